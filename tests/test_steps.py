"""The step table holds flow, the emulated host and the fixes together."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import base_doc, call, make
from wmilab import flow, remedy, steps
from wmilab import hresult as hr
from wmilab.model.decision import Check

SRC = Path(__file__).resolve().parents[1] / "src" / "wmilab"

# The model's access questions. Outside model/, only steps.py may ask them: everyone else
# (flow, the emulated host, the fixes) asks the step's question function instead.
MODEL_QUESTIONS = {"check_remote_activation", "check_remote_access", "check_login",
                   "network_logon", "callback_tokens", "callback_token", "rpcss_inbound",
                   "inbound", "wmi_inbound", "sink_inbound", "check_wmi_activation",
                   "check_encryption", "anonymous_fallback", "ladder",
                   # the firewall steps' answers for every source (steps.*_sources)
                   "rpcss_admission", "wmi_admission", "sink_admission"}


def test_every_step_has_a_spec_a_generator_and_a_flow_title() -> None:
    assert tuple(steps.TABLE) == steps.ORDER
    assert set(remedy.GENERATORS) == set(steps.TABLE)
    for sid, spec in steps.TABLE.items():
        assert sid.startswith(f"c{spec.connection}.")
        assert spec.title and spec.source
        assert (spec.hop is not None) == sid.endswith("-port"), sid


def test_the_host_and_flow_never_ask_the_model_directly() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("model/") or rel == "steps.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in MODEL_QUESTIONS):
                offenders.append(f"{rel}:{node.lineno} {node.func.attr}")
    assert offenders == [], "ask the step's question in wmilab.steps instead: " + ", ".join(
        offenders)


@pytest.mark.parametrize(("where", "expected"), [
    ("namespace", hr.WBEM_E_INVALID_NAMESPACE),
    ("enable_account", hr.WBEM_E_ACCESS_DENIED),
    ("remote_enable", hr.WBEM_E_ACCESS_DENIED),
])
def test_namespace_failure_hresult_depends_on_why(where: str, expected: hr.HResult) -> None:
    assert steps.TABLE[steps.C1_NAMESPACE].failure(Check(False, "no", where)) == expected


def test_flow_takes_titles_and_hresults_from_the_table() -> None:
    d = base_doc()
    d["calls"] = [call("semisync")]
    s = make(d)
    v = flow.evaluate(s.world, s.calls[0])
    f = v.failed
    assert f is not None
    spec = steps.TABLE[f.id]
    assert (f.title, f.connection, f.hresult) == (spec.title, spec.connection,
                                                  hr.RPC_S_SERVER_UNAVAILABLE)
    assert f.host == {"A": s.calls[0].source, "B": s.calls[0].target}[spec.decider]
