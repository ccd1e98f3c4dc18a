"""Sans-IO wire protocols: bytes in, events out, bytes to send.

``rpc`` (MS-RPCE PDUs), ``rpc_conn`` (connection state machines, both roles),
``ntlm`` (MS-NLMP), and the DCOM/WMI codecs built on them. Nothing in this package
opens sockets, reads clocks or starts threads.
"""
