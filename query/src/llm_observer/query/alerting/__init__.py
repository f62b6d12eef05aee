"""Alerting: rules evaluated over ClickHouse aggregates, alert states that survive restarts, and
notifications routed in the shape Alertmanager users know.

Modules, from the bottom:

* ``config`` — the ``alerting:`` section (rules, route, inhibit rules, receivers), validated at load.
* ``model`` — alerts, samples, silences and incidents as plain values; ``AlertingApi``, what the query
  service's REST and gRPC APIs call.
* ``db`` — the one SQLite file that holds alert states, incidents, silences, the notification log and the
  outbox, so a restart neither forgets a firing alert nor notifies twice.
* ``measures``, ``anomaly``, ``forecast``, ``slo``, ``evaluate`` — from rules to ``Sample`` values, with the
  aggregates computed by ClickHouse (``llm_observer.storage.clickhouse.alert_reads``).
* ``engine``, ``incidents`` — pending → firing → resolved, ``for:``, hysteresis, correlation into incidents.
* ``routing``, ``silences``, ``inhibit``, ``dispatch``, ``receivers`` — from alerts to notifications.
* ``component`` — the ``alerting`` extension that runs all of it inside the service.
"""
