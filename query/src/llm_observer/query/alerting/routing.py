"""The routing tree: from an alert's labels to the routes that take it, each naming a receiver, how alerts
are grouped, and when groups are sent — Alertmanager's semantics, so its users' configs mean the same here.

* A route takes an alert when all its matchers match. Its children are tried in order; the first that takes
  the alert ends the search, unless it says ``continue: true``, when later siblings are tried too. A route
  none of whose children take the alert handles it itself.
* ``receiver``, ``group_by``, ``group_wait``, ``group_interval`` and ``repeat_interval`` unset on a route are
  inherited from its parent; the root's unset timings are Alertmanager's defaults (30 s, 5 min, 4 h).
* ``group_by: ["..."]`` groups by every label (each distinct alert its own group); no ``group_by`` at all puts
  every alert of the route in one group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from llm_observer.query.alerting.config import Route
from llm_observer.query.alerting.matchers import Matchers, compile_matchers, match_all

DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
ALL_LABELS = "..."


@dataclass(frozen=True, slots=True)
class RouteNode:
    """A route with everything inherited resolved; ``key`` is stable across restarts for the same config
    (``{}`` for the root, then ``/{matchers}`` per level, as Alertmanager's route keys)."""

    key: str
    receiver: str
    matchers: Matchers
    group_by: tuple[str, ...]
    group_by_all: bool
    group_wait: float
    group_interval: float
    repeat_interval: float
    continue_: bool
    children: tuple[RouteNode, ...]

    def match(self, labels: Mapping[str, str]) -> list[RouteNode]:
        """The routes that take an alert with ``labels`` (empty when this route's matchers do not match)."""
        if not match_all(self.matchers, labels):
            return []
        taken: list[RouteNode] = []
        for child in self.children:
            found = child.match(labels)
            if found:
                taken.extend(found)
                if not child.continue_:
                    break
        return taken or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that name an alert's group on this route (those of ``group_by`` the alert has)."""
        if self.group_by_all:
            return dict(labels)
        return {name: labels[name] for name in self.group_by if name in labels}

    def group_key(self, group_labels: Mapping[str, str]) -> str:
        """``route key:{label="value",…}``, the id of an aggregation group, as Alertmanager writes it."""
        inner = ",".join(f"{name}={json.dumps(group_labels[name])}" for name in sorted(group_labels))
        return f"{self.key}:{{{inner}}}"

    def walk(self) -> list[RouteNode]:
        """This route and every route below it, depth first."""
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes


def build_tree(route: Route) -> RouteNode:
    """The config's ``route`` with inheritance resolved; ``ValueError`` for a bad matcher or a root without a
    receiver."""
    if route.receiver is None:
        raise ValueError("route.receiver: the root route needs a receiver")
    return _build(
        route,
        key="{}",
        receiver=route.receiver,
        group_by=None,
        group_wait=DEFAULT_GROUP_WAIT,
        group_interval=DEFAULT_GROUP_INTERVAL,
        repeat_interval=DEFAULT_REPEAT_INTERVAL,
    )


def _build(
    route: Route,
    *,
    key: str,
    receiver: str,
    group_by: list[str] | None,
    group_wait: float,
    group_interval: float,
    repeat_interval: float,
) -> RouteNode:
    receiver = route.receiver or receiver
    group_by = route.group_by if route.group_by is not None else group_by
    group_wait = route.group_wait if route.group_wait is not None else group_wait
    group_interval = route.group_interval if route.group_interval is not None else group_interval
    repeat_interval = route.repeat_interval if route.repeat_interval is not None else repeat_interval
    child_keys: list[str] = []
    for child in route.routes:
        child_key = f"{key}/{{{','.join(str(m) for m in compile_matchers(child.matchers))}}}"
        # Siblings with the same matchers would share a key (and so their groups): tell them apart by index.
        if child_key in child_keys:
            child_key = f"{child_key}/{len(child_keys)}"
        child_keys.append(child_key)
    children = tuple(
        _build(
            child,
            key=child_key,
            receiver=receiver,
            group_by=group_by,
            group_wait=group_wait,
            group_interval=group_interval,
            repeat_interval=repeat_interval,
        )
        for child, child_key in zip(route.routes, child_keys, strict=True)
    )
    names = list(group_by or [])
    return RouteNode(
        key=key,
        receiver=receiver,
        matchers=compile_matchers(route.matchers),
        group_by=tuple(n for n in names if n != ALL_LABELS),
        group_by_all=ALL_LABELS in names,
        group_wait=group_wait,
        group_interval=group_interval,
        repeat_interval=repeat_interval,
        continue_=route.continue_,
        children=children,
    )
