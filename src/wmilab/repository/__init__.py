"""The CIM repository of an emulated host: namespaces, classes, instances, WQL, methods.

The host calls :class:`Repository`::

    repo = Repository.for_host(MachineFacts("HOSTB", os="xp-sp2", workgroup="WORKGROUP"))
    cls = repo.get_object("root\\cimv2", "Win32_Process")          # a CimClass
    rows = repo.exec_query("root\\cimv2", "SELECT Name FROM Win32_Service")
    out = repo.exec_method("root\\cimv2", "Win32_Process", "Create",
                           {"CommandLine": "notepad.exe"})          # a wmio.Instance
    blob = repo.encode(rows[0])                                    # MS-WMIO EncodingUnit

Errors are ``WmiError(hresult)`` with the HRESULT IWbemServices returns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, NamedTuple

from ..hresult import (
    WBEM_E_ACCESS_DENIED,
    WBEM_E_ALREADY_EXISTS,
    WBEM_E_CLASS_HAS_CHILDREN,
    WBEM_E_CLASS_HAS_INSTANCES,
    WBEM_E_ILLEGAL_NULL,
    WBEM_E_INVALID_CLASS,
    WBEM_E_INVALID_METHOD,
    WBEM_E_INVALID_METHOD_PARAMETERS,
    WBEM_E_INVALID_NAMESPACE,
    WBEM_E_INVALID_OBJECT_PATH,
    WBEM_E_INVALID_OPERATION,
    WBEM_E_INVALID_PARAMETER,
    WBEM_E_INVALID_QUERY,
    WBEM_E_INVALID_QUERY_TYPE,
    WBEM_E_INVALID_SUPERCLASS,
    WBEM_E_NOT_FOUND,
    WBEM_E_OUT_OF_MEMORY,
    WBEM_E_PROVIDER_NOT_CAPABLE,
)
from ..model import namespaces
from ..wire import wmio
from ..wire.wmio import CimType, Value
from . import wql
from .cim import (
    CimClass,
    CimInstance,
    CimObject,
    ObjectPath,
    PathError,
    WmiError,
    dmtf_datetime,
    format_path,
    normalize_namespace,
    parse_path,
    value_matches_key,
)
from .instances import HostState, MachineFacts, cluster_values_for, values_for
from .mof import MofClass, MofQualifier, load_package_mof

__all__ = [
    "Change",
    "CimClass",
    "CimInstance",
    "CimObject",
    "EncodedRow",
    "HostState",
    "MachineFacts",
    "Namespace",
    "Repository",
    "WmiError",
    "dmtf_datetime",
    "format_path",
    "parse_path",
]

# Choice: at most this many distinct queries' encoded results are kept per host (bounded
# memory); when full the cache starts afresh.
MAX_CACHED_RESULTS = 256


class EncodedRow(NamedTuple):
    """One object of a result, encoded: its class name and its MS-WMIO EncodingUnit."""

    class_name: str
    encoded: bytes


# MS-WMI 2.2.3 / MSDocs WmiSdk/iwbemservices-putclass, -putinstance: lFlags.
WBEM_FLAG_UPDATE_ONLY = 0x1
WBEM_FLAG_CREATE_ONLY = 0x2
# MS-WMI 3.1.4.3.6: a class name is a WQL CLASS-NAME and MUST NOT begin or end with "_".
_CLASS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*[A-Za-z0-9]|[A-Za-z]")


@dataclass(frozen=True)
class Change:
    """One change of the repository, the source of an intrinsic event (MSDocs
    WmiSdk/determining-the-type-of-event-to-receive): ``kind`` is ``creation``,
    ``deletion`` or ``modification``; ``previous`` is set for a modification."""

    kind: str
    namespace: str
    target: CimInstance
    previous: CimInstance | None = None


# The namespaces an emulated host serves are those its OS has in the model's namespace
# catalogue (model/namespaces.py), each with the system classes (MSDocs WmiSdk/wmi-system-
# classes: "in every namespace") and the MOF the catalogue names.
SYSTEM_MOF = "system.mof"

# Win32_Process.Create return codes (MSDocs CIMWin32Prov/create-method-in-class-win32-process).
CREATE_SUCCESS = 0
CREATE_INVALID_PARAMETER = 21
# Win32_Process.Terminate: 0 success, 2 access denied (MSDocs CIMWin32Prov/terminate-method-
# in-class-win32-process).
TERMINATE_SUCCESS = 0
TERMINATE_ACCESS_DENIED = 2
# Choice: at most this many static instances per class (bounded memory).
MAX_STATIC_INSTANCES = 10_000


@lru_cache(maxsize=8)
def _mof(name: str) -> tuple[MofClass, ...]:
    return tuple(load_package_mof(name))


@dataclass
class Namespace:
    name: str  # the comparison key, root\cimv2
    title: str = ""  # as Windows names it, root\CIMV2 (its __NAMESPACE instance's Name)
    classes: dict[str, CimClass] = field(default_factory=dict)
    # subclasses() per lower-case class name; cleared whenever a class is added.
    _subclasses: dict[str, tuple[CimClass, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def add(self, mof: MofClass) -> None:
        parent = None
        if mof.superclass:
            parent = self.classes.get(mof.superclass.lower())
            if parent is None:
                raise WmiError(WBEM_E_INVALID_CLASS,
                               f"{mof.source}:{mof.line}: superclass {mof.superclass} of "
                               f"{mof.name} is not declared before it")
        self.classes[mof.name.lower()] = CimClass.from_mof(mof, parent)
        self._subclasses.clear()

    def get(self, name: str) -> CimClass | None:
        return self.classes.get(name.lower())

    def put(self, cls: CimClass) -> None:
        """Store a class written at run time (PutClass); cached lookups are dropped."""
        self.classes[cls.name.lower()] = cls
        self._subclasses.clear()

    def remove(self, name: str) -> None:
        self.classes.pop(name.lower(), None)
        self._subclasses.clear()

    def subclasses(self, name: str) -> list[CimClass]:
        """``name`` and every class derived from it, in declaration order."""
        low = name.lower()
        found = self._subclasses.get(low)
        if found is None:
            found = tuple(c for c in self.classes.values() if c.is_a(low))
            if low in self.classes:  # Choice: only known class names are kept (bounded)
                self._subclasses[low] = found
        return list(found)


class Repository:
    """The WMI repository of one emulated host."""

    def __init__(self, state: HostState) -> None:
        self.state = state
        # Static instances written at run time (PutInstance): namespace -> class -> relpath.
        self.static: dict[str, dict[str, dict[str, CimInstance]]] = {}
        # Called with every Change (the event machinery of the host subscribes here).
        self.listeners: list[Callable[[Change], None]] = []
        self.namespaces: dict[str, Namespace] = {}
        # Encoded results of queries, valid for one state of the repository (see _state_key):
        # query results are pure functions of that state, so a repeated query is answered
        # from here; any change (a Change emitted, a class written, a process created or
        # ended) makes a new key and the next query is computed and encoded afresh.
        self._changes = 0
        self._results: dict[tuple[str, str, str, str, bool], tuple[EncodedRow, ...]] = {}
        self._results_key: tuple[int, int] = (0, 0)
        for spec in namespaces.for_os(state.spec.os, state.spec.features):
            ns = Namespace(spec.key, spec.path)
            for mof_name in (SYSTEM_MOF, *spec.mof):
                for mof in _mof(mof_name):
                    ns.add(mof)
            self.namespaces[spec.key] = ns

    @classmethod
    def for_host(cls, spec: MachineFacts) -> Repository:
        return cls(HostState.build(spec))

    @property
    def server(self) -> str:
        return self.state.spec.name

    # -- lookups -----------------------------------------------------------------------
    def namespace(self, name: str) -> Namespace:
        canon = _normalized(name)
        ns = self.namespaces.get(canon.lower())
        if ns is None:
            raise WmiError(WBEM_E_INVALID_NAMESPACE, f"no namespace {name}")
        return ns

    def get_class(self, namespace: str, name: str) -> CimClass:
        """A class by name; WBEM_E_INVALID_CLASS if there is none (MSDocs
        WmiSdk/iwbemservices-createinstanceenum return values)."""
        cls = self.namespace(namespace).get(name)
        if cls is None:
            raise WmiError(WBEM_E_INVALID_CLASS, f"no class {name}")
        return cls

    def instances_of(self, namespace: str, class_name: str, deep: bool = True
                     ) -> list[CimInstance]:
        ns = self.namespace(namespace)
        base = ns.get(class_name)
        if base is None:
            raise WmiError(WBEM_E_INVALID_CLASS, f"no class {class_name}")
        classes = ns.subclasses(base.name) if deep else [base]
        out: list[CimInstance] = []
        for cls in classes:
            if cls.name.lower() == "__namespace":
                out += [CimInstance(cls, {"Name": child}) for child in self._children(ns.name)]
                continue
            out += list(self.static.get(ns.name.lower(), {}).get(cls.name.lower(), {}).values())
            if ns.name.lower() == "root\\cimv2":
                out += [CimInstance(cls, values) for values in values_for(self.state, cls.name)]
            elif ns.name.lower() == "root\\mscluster":
                out += [CimInstance(cls, values)
                        for values in cluster_values_for(self.state, cls.name)]
        return out

    def _children(self, ns_name: str) -> list[str]:
        key = ns_name.lower()
        return [other.title.rsplit("\\", 1)[-1] for other in self.namespaces.values()
                if namespaces.parent(other.name) == key]

    def create_instance_enum(self, namespace: str, class_name: str, deep: bool = True
                             ) -> list[CimInstance]:
        """IWbemServices::CreateInstanceEnum: instances of the class and, when ``deep``
        (WBEM_FLAG_DEEP), of its subclasses (MSDocs WmiSdk/iwbemservices-createinstanceenum)."""
        return self.instances_of(namespace, class_name, deep)

    def get_object(self, namespace: str, path: str) -> CimObject:
        """IWbemServices::GetObject: a class (``Win32_Process``) or an instance
        (``Win32_Process.Handle="4"``). A missing class or instance is WBEM_E_NOT_FOUND
        (MSDocs WmiSdk/iwbemservices-getobject return values)."""
        parsed = self._parse(path)
        ns_name = parsed.namespace or namespace
        ns = self.namespace(ns_name)
        cls = ns.get(parsed.class_name)
        if cls is None:
            raise WmiError(WBEM_E_NOT_FOUND, f"no class {parsed.class_name}")
        if parsed.is_class:
            return cls
        found = self._find(ns.name, cls, parsed)
        if found is None:
            raise WmiError(WBEM_E_NOT_FOUND, f"no instance {path}")
        return found

    @staticmethod
    def _parse(path: str) -> ObjectPath:
        try:
            return parse_path(path)
        except PathError as exc:
            # An unparsable object path: WBEM_E_INVALID_OBJECT_PATH (MS-WMI 2.2.11).
            raise WmiError(WBEM_E_INVALID_OBJECT_PATH, str(exc)) from None

    def _find(self, namespace: str, cls: CimClass, path: ObjectPath) -> CimInstance | None:
        for inst in self.instances_of(namespace, cls.name, deep=True):
            if path.singleton:
                if inst.cls.is_singleton:
                    return inst
                continue
            keys = path.keys or ()
            if len(keys) == 1 and keys[0][0] is None:
                if len(inst.cls.keys) == 1 and value_matches_key(
                        inst.get(inst.cls.keys[0]), keys[0][1]):
                    return inst
                continue
            names = {(k or "").lower() for k, _ in keys}
            if names != {k.lower() for k in inst.cls.keys}:
                continue
            if all(value_matches_key(inst.get(k or ""), v) for k, v in keys):
                return inst
        return None

    # -- queries -----------------------------------------------------------------------
    def exec_query(self, namespace: str, query: str, language: str = "WQL"
                   ) -> list[CimObject]:
        """IWbemServices::ExecQuery. Only WQL is accepted (MS-WMI 3.1.4.3.18:
        strQueryLanguage MUST be "WQL"; otherwise WBEM_E_INVALID_QUERY_TYPE)."""
        if language.upper() != "WQL":
            raise WmiError(WBEM_E_INVALID_QUERY_TYPE, f"query language {language}")
        ns = self.namespace(namespace)
        parsed = wql.parse_wql(query.strip())
        if isinstance(parsed, wql.AssocQuery):
            return self._assoc_query(ns, parsed)
        if parsed.class_name.lower() == "meta_class":
            return list(self._schema_query(ns, parsed))
        cls = ns.get(parsed.class_name)
        if cls is None:
            # MSDocs WmiSdk/iwbemservices-execquery: WBEM_E_INVALID_CLASS for an unknown class.
            raise WmiError(WBEM_E_INVALID_CLASS, f"no class {parsed.class_name}")
        self._check_properties(cls, parsed)
        out: list[CimObject] = []
        for inst in self.instances_of(ns.name, cls.name, deep=True):
            if parsed.where is not None and wql.evaluate(
                    parsed.where, self._getter(ns, inst), self._isa(ns, inst)) is not True:
                continue
            if parsed.properties is not None:
                inst = inst.project(frozenset(p.lower() for p in parsed.properties
                                              if not p.startswith("__")))
            out.append(inst)
        return out

    def _check_properties(self, cls: CimClass, query: wql.SelectQuery) -> None:
        """Unknown properties make the query invalid (choice, matching WMI's
        WBEM_E_INVALID_QUERY for a property the class lacks); arrays cannot be compared
        (MSDocs WmiSdk/wql-sql-for-wmi: arrays are not supported in WHERE)."""
        for name in [*(query.properties or ()), *wql.referenced_properties(query.where)]:
            if name.startswith("__"):
                if name.lower() not in _SYSTEM_PROPERTIES:
                    raise WmiError(WBEM_E_INVALID_QUERY, f"no system property {name}")
                continue
            if cls.get_property(name) is None:
                raise WmiError(WBEM_E_INVALID_QUERY, f"{cls.name} has no property {name}")
        for name in wql.referenced_properties(query.where):
            prop = cls.get_property(name)
            if prop is not None and wmio.is_array(prop.cim_type):
                raise WmiError(WBEM_E_INVALID_QUERY, f"array property {name} in WHERE")

    def _system_property(self, ns: Namespace, obj: CimObject, name: str) -> Value:
        """System properties (MSDocs WmiSdk/wmi-system-properties)."""
        cls = obj if isinstance(obj, CimClass) else obj.cls
        low = name.lower()
        if low == "__class":
            return cls.name
        if low == "__superclass":
            return cls.superclass.name if cls.superclass else None
        if low == "__dynasty":
            return (cls.ancestors[-1] if cls.ancestors else cls).name
        if low == "__derivation":
            return list(cls.derivation)
        if low == "__genus":
            return 1 if isinstance(obj, CimClass) else 2
        if low == "__server":
            return self.server
        if low == "__namespace":
            return ns.name
        if low == "__relpath":
            return cls.name if isinstance(obj, CimClass) else obj.relpath
        if low == "__path":
            rel = cls.name if isinstance(obj, CimClass) else obj.relpath
            return f"\\\\{self.server}\\{ns.name}:{rel}"
        if low == "__property_count":
            return len(cls.properties)
        return None

    def _getter(self, ns: Namespace, obj: CimObject) -> wql.Getter:
        def get(name: str) -> Value:
            if name.startswith("__"):
                return self._system_property(ns, obj, name)
            return obj.get(name) if isinstance(obj, CimInstance) else None
        return get

    def _isa(self, ns: Namespace, obj: CimObject) -> wql.IsaCheck:
        """ISA (MSDocs WmiSdk/isa-operator-for-data-queries and -for-schema-queries):
        ``__THIS ISA 'C'`` tests the object's own class; ``Prop ISA 'C'`` tests an embedded
        object property."""
        def isa(prop: str, class_name: str) -> bool | None:
            if prop.lower() == "__this":
                cls = obj if isinstance(obj, CimClass) else obj.cls
                return cls.is_a(class_name)
            value = obj.get(prop) if isinstance(obj, CimInstance) else None
            if value is None:
                return None
            if isinstance(value, wmio.Instance):
                return value.cls.name.lower() == class_name.lower() or any(
                    d.lower() == class_name.lower() for d in value.cls.derivation)
            return False
        return isa

    def _schema_query(self, ns: Namespace, query: wql.SelectQuery) -> list[CimClass]:
        """``SELECT * FROM meta_class [WHERE ...]`` (MSDocs WmiSdk/querying-the-schema)."""
        out = []
        for cls in ns.classes.values():
            if query.where is None or wql.evaluate(
                    query.where, self._getter(ns, cls), self._isa(ns, cls)) is True:
                out.append(cls)
        return out

    def _assoc_query(self, ns: Namespace, q: wql.AssocQuery) -> list[CimObject]:
        """ASSOCIATORS OF / REFERENCES OF (MSDocs WmiSdk/associators-of-statement,
        WmiSdk/references-of-statement)."""
        source_path = self._parse(q.path)
        source_cls = ns.get(source_path.class_name)
        if source_cls is None:
            raise WmiError(WBEM_E_NOT_FOUND, f"no class {source_path.class_name}")
        if source_path.is_class:
            raise WmiError(WBEM_E_INVALID_QUERY, "schema associations are not supported")
        source = self._find(ns.name, source_cls, source_path)
        if source is None:
            raise WmiError(WBEM_E_NOT_FOUND, f"no instance {q.path}")
        for name in (q.result_class, q.assoc_class):
            if name and ns.get(name) is None:
                raise WmiError(WBEM_E_INVALID_CLASS, f"no class {name}")
        src_rel = source.relpath
        results: list[CimObject] = []
        seen: set[str] = set()
        for assoc_cls in ns.classes.values():
            if not assoc_cls.is_association or assoc_cls.is_abstract:
                continue
            if q.kind == "associators" and q.assoc_class and not assoc_cls.is_a(q.assoc_class):
                continue
            if q.kind == "references" and q.result_class and not assoc_cls.is_a(q.result_class):
                continue
            refs = [p.name for p, _ in assoc_cls.properties if wmio.base_type(p.cim_type)
                    == CimType.REFERENCE and not wmio.is_array(p.cim_type)]
            for assoc in self.instances_of(ns.name, assoc_cls.name, deep=False):
                roles = [r for r in refs if isinstance(assoc.get(r), str)
                         and value_matches_key(str(assoc.get(r)), src_rel)]
                if q.role:
                    roles = [r for r in roles if r.lower() == q.role.lower()]
                if not roles:
                    continue
                if q.kind == "references":
                    key = assoc.relpath.lower()
                    if key not in seen:
                        seen.add(key)
                        results.append(assoc)
                    continue
                for result_role in refs:
                    if result_role in roles:
                        continue
                    if q.result_role and result_role.lower() != q.result_role.lower():
                        continue
                    target = self._resolve(ns, str(assoc.get(result_role)))
                    if target is None:
                        continue
                    if q.result_class and not target.cls.is_a(q.result_class):
                        continue
                    key = target.relpath.lower()
                    if key not in seen:
                        seen.add(key)
                        results.append(target)
        if q.class_defs_only:
            classes: dict[str, CimObject] = {}
            for r in results:
                c = r.cls if isinstance(r, CimInstance) else r
                classes.setdefault(c.name.lower(), c)
            return list(classes.values())
        if q.keys_only:
            return [r.project(frozenset()) if isinstance(r, CimInstance) else r for r in results]
        return results

    def _resolve(self, ns: Namespace, path: str) -> CimInstance | None:
        try:
            parsed = parse_path(path)
        except PathError:
            return None
        cls = ns.get(parsed.class_name)
        return None if cls is None else self._find(ns.name, cls, parsed)

    # -- methods -----------------------------------------------------------------------
    def exec_method(self, namespace: str, path: str, method: str,
                    in_params: Mapping[str, Value] | wmio.Instance | None = None
                    ) -> wmio.Instance:
        """IWbemServices::ExecMethod: returns the out-parameters instance.

        WBEM_E_INVALID_METHOD for a method the class lacks, WBEM_E_INVALID_PARAMETER for an
        unknown in-parameter (MSDocs WmiSdk/iwbemservices-execmethod return values).
        """
        ns = self.namespace(namespace)
        parsed = self._parse(path)
        cls = ns.get(parsed.class_name)
        if cls is None:
            raise WmiError(WBEM_E_INVALID_CLASS, f"no class {parsed.class_name}")
        decl = cls.get_method(method)
        if decl is None:
            raise WmiError(WBEM_E_INVALID_METHOD, f"{cls.name} has no method {method}")
        wire_method = cls.to_wire().method(decl.name)
        assert wire_method is not None
        params = dict(in_params.values) if isinstance(in_params, wmio.Instance) else dict(
            in_params or {})
        inputs = wire_method.inputs
        args: dict[str, Value] = {}
        for name, value in params.items():
            prop = inputs.property(name) if inputs else None
            if prop is None:
                # An in-parameter the method does not declare (MS-WMI 2.2.11).
                raise WmiError(WBEM_E_INVALID_METHOD_PARAMETERS,
                               f"{decl.name} has no parameter {name}")
            args[prop.name.lower()] = value
        static = any(q.name.lower() == "static" for q in decl.qualifiers)
        target: CimInstance | None = None
        if not static:
            if parsed.is_class:
                # Choice: a non-static method called on a class path is an invalid parameter.
                raise WmiError(WBEM_E_INVALID_PARAMETER, f"{decl.name} needs an instance path")
            target = self._find(ns.name, cls, parsed)
            if target is None:
                raise WmiError(WBEM_E_NOT_FOUND, f"no instance {path}")
        out = self._run(cls, decl.name.lower(), args, target)
        outputs = wire_method.outputs or wmio.ClassDef("__PARAMETERS")
        return wmio.Instance(outputs, out)

    def _run(self, cls: CimClass, method: str, args: dict[str, Value],
             target: CimInstance | None) -> dict[str, Value]:
        if cls.is_a("Win32_Process") and method == "create":
            command = args.get("commandline")
            if not isinstance(command, str) or not command.strip():
                return {"ReturnValue": CREATE_INVALID_PARAMETER}
            directory = args.get("currentdirectory")
            started = self.start_process(command, directory if isinstance(directory, str)
                                         else None)
            return {"ProcessId": started.get("ProcessId"), "ReturnValue": CREATE_SUCCESS}
        if cls.is_a("Win32_Process") and method == "terminate" and target is not None:
            pid = target.get("ProcessId")
            ok = isinstance(pid, int) and self.state.terminate(pid)
            if ok:
                self._emit(Change("deletion", "root\\cimv2", target))
            return {"ReturnValue": TERMINATE_SUCCESS if ok else TERMINATE_ACCESS_DENIED}
        raise WmiError(WBEM_E_INVALID_METHOD, f"{cls.name}.{method} is not implemented")

    # -- writes (IWbemServices::PutClass, DeleteClass, PutInstance, DeleteInstance) -------
    @staticmethod
    def is_dynamic(cls: CimClass) -> bool:
        """Instances come from a provider (qualifier ``dynamic``, MSDocs
        WmiSdk/standard-qualifiers); otherwise they are static, kept in the repository."""
        return cls.has_qualifier("dynamic") or any(a.has_qualifier("dynamic")
                                                   for a in cls.ancestors)

    def write_target(self, namespace: str, class_name: str
                     ) -> Literal["static-instance", "dynamic-instance"]:
        """What a write of ``class_name``'s instances is, for the namespace rights check:
        ``dynamic-instance`` or ``static-instance`` (an unknown class counts as static)."""
        cls = self.namespace(namespace).get(class_name)
        return "dynamic-instance" if cls is not None and self.is_dynamic(cls) else "static-instance"

    @staticmethod
    def new_class() -> wmio.ClassDef:
        """GetObject with an empty path: a new, empty class (MS-WMI 3.1.4.3.4: "If
        strObjectPath is NULL or an empty string, the server MUST return a new empty
        class"), the first step a client takes to create one."""
        return wmio.ClassDef("")

    def put_class(self, namespace: str, wire: wmio.ClassDef, flags: int = 0) -> CimClass:
        """Create or update a class (MS-WMI 3.1.4.3.6)."""
        ns = self.namespace(namespace)
        name = wire.name
        if not name or not _CLASS_NAME.fullmatch(name):
            # MS-WMI 3.1.4.3.6: names not matching CLASS-NAME, or beginning or ending with an
            # underscore (reserved for system classes) -> WBEM_E_INVALID_PARAMETER.
            raise WmiError(WBEM_E_INVALID_PARAMETER, f"bad class name {name!r}")
        existing = ns.get(name)
        if existing is not None and flags & WBEM_FLAG_CREATE_ONLY:
            # MSDocs WmiSdk/iwbemservices-putclass: WBEM_FLAG_CREATE_ONLY and the class exists.
            raise WmiError(WBEM_E_ALREADY_EXISTS, f"class {name} exists")
        if existing is None and flags & WBEM_FLAG_UPDATE_ONLY:
            # MSDocs WmiSdk/iwbemservices-putclass: WBEM_FLAG_UPDATE_ONLY and no such class.
            raise WmiError(WBEM_E_NOT_FOUND, f"no class {name}")
        super_name = wire.derivation[0] if wire.derivation else (
            wire.parent.name if wire.parent is not None else "")
        parent = ns.get(super_name) if super_name else None
        if super_name and parent is None:
            raise WmiError(WBEM_E_INVALID_SUPERCLASS, f"no superclass {super_name}")
        if existing is not None:
            # Choice (docs/choices.md): an update in the default (compatible) mode is refused
            # once the class has subclasses or instances, as WMI refuses changes that would
            # conflict with them (MSDocs WmiSdk/iwbemservices-putclass, WBEM_E_CLASS_HAS_*).
            if any(c is not existing for c in ns.subclasses(existing.name)):
                raise WmiError(WBEM_E_CLASS_HAS_CHILDREN, f"{name} has subclasses")
            if self.static.get(ns.name.lower(), {}).get(name.lower()):
                raise WmiError(WBEM_E_CLASS_HAS_INSTANCES, f"{name} has instances")
        inherited = {p.name.lower() for p, _ in parent.properties} if parent else set()
        own = tuple(
            wmio.Property(p.name, p.cim_type, p.qualifiers, p.default, class_ref=p.class_ref)
            for p in wire.properties if not p.inherited or p.name.lower() not in inherited)
        quals = tuple(MofQualifier(q.name, q.value) for q in wire.qualifiers)
        # Choice: methods of a class written over the wire are not kept (no provider runs them).
        cls = CimClass(name, parent, quals, own, ())
        ns.put(cls)
        self._changes += 1
        return cls

    def delete_class(self, namespace: str, name: str) -> None:
        """Delete a class with its subclasses and their instances (MS-WMI 3.1.4.3.8)."""
        ns = self.namespace(namespace)
        cls = ns.get(name) if name else None
        if cls is None:
            # MSDocs WmiSdk/iwbemservices-deleteclass: a class that does not exist ->
            # WBEM_E_NOT_FOUND.
            raise WmiError(WBEM_E_NOT_FOUND, f"no class {name!r}")
        if cls.name.startswith("__"):
            # Choice (docs/choices.md): system classes cannot be deleted.
            raise WmiError(WBEM_E_INVALID_OPERATION, f"{cls.name} is a system class")
        store = self.static.get(ns.name.lower(), {})
        for sub in ns.subclasses(cls.name):
            for inst in list(store.pop(sub.name.lower(), {}).values()):
                self._emit(Change("deletion", ns.name, inst))
            ns.remove(sub.name)
        self._changes += 1

    def create_class_enum(self, namespace: str, superclass: str, deep: bool) -> list[CimClass]:
        """CreateClassEnum (MS-WMI 3.1.4.3.10): subclasses of ``superclass`` (every class when
        empty); WBEM_FLAG_SHALLOW keeps only the immediate ones. The class itself is not
        returned."""
        ns = self.namespace(namespace)
        if superclass:
            base = ns.get(superclass)
            if base is None:
                raise WmiError(WBEM_E_INVALID_CLASS, f"no class {superclass}")
            found = [c for c in ns.subclasses(base.name) if c is not base]
            if not deep:
                found = [c for c in found if c.superclass is base]
            return found
        everything = list(ns.classes.values())
        return everything if deep else [c for c in everything if c.superclass is None]

    def put_instance(self, namespace: str, wire: wmio.Instance, flags: int = 0) -> CimInstance:
        """Create or update an instance (MS-WMI 3.1.4.3.12); returns the stored instance."""
        ns = self.namespace(namespace)
        cls = ns.get(wire.cls.name)
        if cls is None:
            raise WmiError(WBEM_E_INVALID_CLASS, f"no class {wire.cls.name!r}")
        if cls.is_abstract:
            # Choice: an abstract class has no instances (DSP0004 "Abstract").
            raise WmiError(WBEM_E_INVALID_OPERATION, f"{cls.name} is abstract")
        if self.is_dynamic(cls):
            # Choice (docs/choices.md): the emulated providers write no instances
            # (MSDocs WmiSdk/provider-putinstance: the default is WBEM_E_PROVIDER_NOT_CAPABLE).
            raise WmiError(WBEM_E_PROVIDER_NOT_CAPABLE, f"{cls.name} is provided dynamically")
        values = {k: v for k, v in wire.values.items() if cls.get_property(k) is not None}
        inst = CimInstance(cls, values)
        if any(inst.get(k) is None for k in cls.keys):
            # A key property left NULL (MS-WMI 2.2.11 WBEM_E_ILLEGAL_NULL).
            raise WmiError(WBEM_E_ILLEGAL_NULL, f"{cls.name}: a key property is NULL")
        store = self.static.setdefault(ns.name.lower(), {}).setdefault(cls.name.lower(), {})
        key = inst.relpath.lower()
        previous = store.get(key)
        if previous is not None and flags & WBEM_FLAG_CREATE_ONLY:
            raise WmiError(WBEM_E_ALREADY_EXISTS, f"{inst.relpath} exists")
        if previous is None and flags & WBEM_FLAG_UPDATE_ONLY:
            raise WmiError(WBEM_E_NOT_FOUND, f"no instance {inst.relpath}")
        if len(store) >= MAX_STATIC_INSTANCES:
            # Choice: a bounded repository (a client cannot fill the host's memory).
            raise WmiError(WBEM_E_OUT_OF_MEMORY, "too many instances")
        store[key] = inst
        self._emit(Change("creation" if previous is None else "modification", ns.name, inst,
                          previous))
        return inst

    def delete_instance(self, namespace: str, path: str) -> CimInstance:
        """Delete an instance (MS-WMI 3.1.4.3.14); returns what was deleted."""
        ns = self.namespace(namespace)
        parsed = self._parse(path)
        cls = ns.get(parsed.class_name)
        if cls is None:
            raise WmiError(WBEM_E_INVALID_CLASS, f"no class {parsed.class_name}")
        if parsed.is_class:
            # A class path names no instance (MS-WMI 2.2.11 WBEM_E_INVALID_OBJECT_PATH).
            raise WmiError(WBEM_E_INVALID_OBJECT_PATH, f"{path} is a class path")
        found = self._find(ns.name, cls, parsed)
        if found is None:
            raise WmiError(WBEM_E_NOT_FOUND, f"no instance {path}")
        if found.cls.is_a("Win32_Process"):
            # Choice (docs/choices.md): deleting a Win32_Process instance ends the emulated
            # process, as the CIMWin32 provider's DeleteInstance terminates it.
            pid = found.get("ProcessId")
            if not isinstance(pid, int) or not self.state.terminate(pid):
                raise WmiError(WBEM_E_ACCESS_DENIED, f"cannot end process {pid}")
            self._emit(Change("deletion", ns.name, found))
            return found
        if self.is_dynamic(found.cls):
            raise WmiError(WBEM_E_PROVIDER_NOT_CAPABLE, f"{found.cls.name} is dynamic")
        store = self.static.get(ns.name.lower(), {}).get(found.cls.name.lower(), {})
        store.pop(found.relpath.lower(), None)
        self._emit(Change("deletion", ns.name, found))
        return found

    def start_process(self, command_line: str, directory: str | None = None) -> CimInstance:
        """An emulated process starts (Win32_Process.Create, or a test raising the event);
        nothing runs on this machine."""
        proc = self.state.create_process(command_line, directory)
        inst = self._process_instance(proc.pid)
        self._emit(Change("creation", "root\\cimv2", inst))
        return inst

    def _process_instance(self, pid: int) -> CimInstance:
        cls = self.get_class("root\\cimv2", "Win32_Process")
        for values in values_for(self.state, "Win32_Process"):
            if values.get("ProcessId") == pid:
                return CimInstance(cls, values)
        raise WmiError(WBEM_E_NOT_FOUND, f"no process {pid}")

    def _emit(self, change: Change) -> None:
        self._changes += 1
        for listener in list(self.listeners):
            listener(change)

    # -- wire --------------------------------------------------------------------------
    def _state_key(self) -> tuple[int, int]:
        """Changes so far: the repository's own (writes, classes) and the host state's."""
        return (self._changes, self.state.version)

    def query_encoded(self, namespace: str, query: str, language: str = "WQL",
                      *, kind: Literal["query", "instances"] = "query",
                      deep: bool = True) -> tuple[EncodedRow, ...]:
        """``exec_query`` (kind ``query``) or ``create_instance_enum`` (kind ``instances``,
        ``query`` the class name) with every row encoded, as the enumerator serves them.

        Kept until the repository or the host state changes, so that a client polling the
        same query costs one dictionary lookup; errors (WmiError) are not kept.
        """
        key = self._state_key()
        if key != self._results_key:
            self._results.clear()
            self._results_key = key
        cache_key = (kind, namespace, query, language, deep)
        found = self._results.get(cache_key)
        if found is not None:
            return found
        rows: list[CimObject] | list[CimInstance]
        if kind == "query":
            rows = self.exec_query(namespace, query, language)
        else:
            rows = self.create_instance_enum(namespace, query, deep)
        encoded = tuple(EncodedRow(row.name if isinstance(row, CimClass) else row.cls.name,
                                   self.encode(row, namespace)) for row in rows)
        if len(self._results) >= MAX_CACHED_RESULTS:
            self._results.clear()
        self._results[cache_key] = encoded
        return encoded

    def encode(self, obj: CimObject | wmio.Instance | wmio.ClassDef, namespace: str,
               decorate: bool = True) -> bytes:
        """The MS-WMIO EncodingUnit of ``obj``, decorated with this host and ``namespace``."""
        ns = _normalized(namespace)
        if isinstance(obj, CimClass):
            return obj.encode(self.server, ns, decorate)  # kept per class: classes never change
        # Instances are encoded afresh here: the host's state (and so their values) change;
        # query_encoded keeps whole results per state.
        wire = obj.to_wire() if isinstance(obj, CimInstance) else obj
        return wmio.encode_encoding_unit(wire, self.server, ns, decorate)


@lru_cache(maxsize=64)
def _normalized(namespace: str) -> str:
    """normalize_namespace, remembered: the same few namespaces come back on every call."""
    return normalize_namespace(namespace)


_SYSTEM_PROPERTIES = frozenset({
    "__class", "__superclass", "__dynasty", "__derivation", "__genus", "__server",
    "__namespace", "__relpath", "__path", "__property_count", "__this"})
