from collections.abc import Callable
from typing import Any

def string_map(
    maps: list[dict[str, Any]], stringify: Callable[[Any], str]
) -> tuple[bytes, bytes, bytes, bytes, bytes, int]: ...
def hex_ids(ids: list[bytes]) -> tuple[bytes, bytes]: ...
