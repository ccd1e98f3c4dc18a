"""MS-DCOM and MS-RPCE constants the DCOM codecs share (signatures, levels, status codes)."""

from wmilab import hresult as hr

# MS-DCOM 2.2.18: OBJREF signature "MEOW" and flags.
OBJREF_SIGNATURE = 0x574F454D
FLAGS_OBJREF_STANDARD = 0x1
FLAGS_OBJREF_HANDLER = 0x2
FLAGS_OBJREF_CUSTOM = 0x4
FLAGS_OBJREF_EXTENDED = 0x8
SORF_NOPING = 0x1000  # MS-DCOM 2.2.18.2 STDOBJREF flags

# MS-DCOM 2.2.11 COMVERSION: Windows XP and later speak 5.7.
COM_VERSION = (5, 7)
# MS-RPCE 2.2.1.1.7 security provider constants.
RPC_C_AUTHN_NONE = 0
RPC_C_AUTHN_GSS_NEGOTIATE = 9
RPC_C_AUTHN_WINNT = 10
RPC_C_AUTHN_GSS_KERBEROS = 16
# MS-RPCE 2.2.1.1.8 authentication levels.
RPC_C_AUTHN_LEVEL_PKT_INTEGRITY = 5
RPC_C_AUTHN_LEVEL_PKT_PRIVACY = 6
# MS-DCOM 2.2.19.3 / [C706] Annex I: tower id of ncacn_ip_tcp.
TOWER_NCACN_IP_TCP = 0x0007
# MS-DCOM 2.2.22.1: destCtx MSHCTX_DIFFERENTMACHINE.
MSHCTX_DIFFERENTMACHINE = 2

S_OK = 0x00000000
E_NOINTERFACE = hr.E_NOINTERFACE.code  # from the status-code catalogue
E_ACCESSDENIED = hr.E_ACCESSDENIED.code  # from the status-code catalogue
# Win32 ERROR_ACCESS_DENIED, the status of the fault PDU that activation returns when
# launch/activation permission is denied (MS-DCOM 3.1.2.5.2.3.3 note; impacket #449 shows
# Windows answering RemoteCreateInstance with a fault whose status is 5).
ERROR_ACCESS_DENIED = 0x00000005
# MS-DCOM 2.2.28 / MS-ERREF 2.2: OR_INVALID_OXID, returned as a Win32 code by IObjectExporter.
OR_INVALID_OXID = 1910
OR_INVALID_SET = 1912
# MS-RPCE 2.2.2.11 (nca_s_op_rng_error): the RPC runtime answers unknown opnums with this fault.
NCA_S_OP_RNG_ERROR = hr.NCA_S_OP_RNG_ERROR  # from the status-code catalogue
