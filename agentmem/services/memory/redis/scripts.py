"""The Lua scripts of RedisMemoryService, read from the ``lua`` directory of this package.

Each ``<name>.lua`` but ``common.lua`` is the script ``<name>``; it runs after the shared
helpers of :data:`agentmem.services._redis.LUA_HELPERS`, the user's keys in named locals
(:data:`keys.LUA_KEY_LOCALS`) and ``common.lua``. Every script runs on all the keys of one
user (:meth:`keys.UserKeys.all`).
"""

from __future__ import annotations

from importlib.resources import files

from agentmem.services._redis import LUA_HELPERS
from agentmem.services.memory.redis.keys import LUA_KEY_LOCALS

__all__ = ["SCRIPTS"]

_LUA = files("agentmem.services.memory.redis").joinpath("lua")
_PRELUDE = LUA_HELPERS + LUA_KEY_LOCALS + _LUA.joinpath("common.lua").read_text("utf-8")

#: The full source of each script, by name.
SCRIPTS = {
    entry.name.removesuffix(".lua"): _PRELUDE + entry.read_text("utf-8")
    for entry in sorted(_LUA.iterdir(), key=lambda entry: entry.name)
    if entry.name.endswith(".lua") and entry.name != "common.lua"
}
