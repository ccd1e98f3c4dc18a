"""wmilab's own WMI client, built on the sans-IO wire core (``wire/``).

So far it covers what the lab needs to make an asynchronous call end to end: activation
and NTLMLogin (:mod:`wmilab.client.session`), with the sink exported by
:class:`wmilab.host.sink.SinkExporter` (the unsecapp role on computer A).
"""
