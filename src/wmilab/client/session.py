"""Connection 1 from computer A, made with wmilab's own wire code: activation, NTLMLogin,
and an asynchronous query whose results come back to a sink over Connection 2."""

from __future__ import annotations

from wmilab.transport import RpcCallError, RpcClient
from wmilab.wire import dcom, ids, wmi
from wmilab.wire.dcom import ObjRefStandard
from wmilab.wire.rpc import AuthLevel
from wmilab.wire.rpc_conn import ClientCredentials

__all__ = ["exec_query_async", "login"]


async def login(address: str, rpcss_port: int, *, local_address: str | None, user: str,
                password: str, namespace: str,
                auth_level: int = AuthLevel.PKT_PRIVACY) -> tuple[RpcClient, ObjRefStandard]:
    """Activate WbemLevel1Login on ``address`` and log in to ``namespace``.

    Returns the connection to the WMI service's port and the IWbemServices OBJREF.
    Failures raise :class:`RpcCallError` carrying the HRESULT (0x800706BA for a refused
    connection, 0x80070005 for an access-denied fault, the WBEM code of NTLMLogin).
    """
    dom, _, name = user.rpartition("\\")
    creds = ClientCredentials(name, password, dom)
    async with await RpcClient.connect(address, rpcss_port, local_address=local_address,
                                       credentials=creds, auth_level=auth_level) as scm:
        await scm.bind(ids.IID_IREMOTESCMACTIVATOR)
        act = dcom.parse_activation_reply(await scm.call(
            ids.RemoteScmActivatorOp.REMOTE_CREATE_INSTANCE,
            dcom.build_remote_create_instance_request(ids.CLSID_WBEMLEVEL1LOGIN,
                                                      [ids.IID_IWBEMLEVEL1LOGIN])))
    if act.scm is None or not act.interfaces or act.interfaces[0].objref is None:
        raise RpcCallError(act.hresult or 0x80004005, "activation returned no interface")
    host, port = act.scm.bindings.tcp_endpoints()[0]
    if port is None:
        raise RpcCallError(0x800706BA, "activation returned no TCP endpoint")
    cli = await RpcClient.connect(host, port, local_address=local_address, credentials=creds,
                                  auth_level=auth_level)
    try:
        await cli.bind(ids.IID_IWBEMLEVEL1LOGIN)
        r = dcom.NdrReader(await cli.call(
            ids.WbemLevel1LoginOp.NTLM_LOGIN,
            wmi.build_ntlm_login_request("//./" + namespace.replace("\\", "/")),
            act.interfaces[0].objref.std.ipid))
        dcom.read_orpcthat(r)
        services = dcom.read_unique_objref(r)
        code = r.u32()
    except BaseException:
        await cli.close()
        raise
    if code or not isinstance(services, ObjRefStandard):
        await cli.close()
        raise RpcCallError(code or 0x80004005, "NTLMLogin failed")
    return cli, services


async def exec_query_async(cli: RpcClient, services: ObjRefStandard, query: str,
                           sink: ObjRefStandard) -> int:
    """IWbemServices::ExecQueryAsync; returns the HRESULT of the call itself (MS-WMI
    3.1.4.3.21: WBEM_S_NO_ERROR once the query started; results go to ``sink``)."""
    stub = wmi.build_exec_query_request(query, flags=0, sink=sink)
    return wmi.parse_hresult_reply(await cli.call(ids.WbemServicesOp.EXEC_QUERY_ASYNC, stub,
                                                  services.std.ipid))
