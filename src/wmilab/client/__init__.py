"""wmilab's own WMI client, built on the sans-IO wire core (``wire/``).

- :mod:`wmilab.client.session`: Connection 1 step by step (activation, NTLMLogin, sync and
  semisynchronous queries with ``IEnumWbemClassObject::Next`` in batches,
  ``ExecQueryAsync``), each step timed under the id ``check`` uses.
- :mod:`wmilab.client.callback`: Connection 2 on A, the OXID resolver and the
  ``IWbemObjectSink`` exporter that B calls back.
- :mod:`wmilab.client.transport`: opening connections and naming how they failed.
"""
