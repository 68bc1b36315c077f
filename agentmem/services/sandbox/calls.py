"""Operations called by name with JSON data, each defined once by a typed method.

Two kinds of operation travel this way: the tools of a sandbox type (methods of an engine
marked with :func:`tool`) and the operations of a sandbox backend that the sandbox server
serves (the marked methods of :class:`~agentmem.services.sandbox.backend.SandboxBackend`).
The method is the definition: its signature is the contract of the call.

Where a call arrives, :func:`validate_call` checks the JSON arguments against that
signature (the server then authorizes the call); for a tool, :func:`call_by_name` also
runs the method and returns the result as JSON. On the
caller's side (the handles, the remote backend), :func:`proxies` and :func:`async_proxy`
turn the same method into typed methods that send the call by name and validate the
answer against its return type. Errors that keep their type across the server are encoded
by :func:`error_to_json` and raised again by :func:`error_from_json`.
"""

from __future__ import annotations

import functools
import inspect
import json
import typing
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar, overload

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from agentmem.errors import (
    BackendError,
    InvalidArgumentError,
    NotFoundError,
    SandboxAuthError,
    SandboxError,
    SandboxPathError,
    SandboxUnavailableError,
)

__all__ = [
    "INTERNAL_ERROR",
    "AsyncCaller",
    "AsyncProxy",
    "Caller",
    "Contract",
    "Proxy",
    "arguments_to_json",
    "async_proxy",
    "call_by_name",
    "contract",
    "error_from_json",
    "error_to_json",
    "proxies",
    "to_json",
    "tool",
    "tool_names",
    "validate_call",
]

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")

_TOOL_MARK = "__agentmem_sandbox_tool__"
_ANY: TypeAdapter[Any] = TypeAdapter(Any)
# Keeps NaN and infinities as they are, for arguments_to_json to refuse them.
_ARGUMENT: TypeAdapter[Any] = TypeAdapter(Any, config=ConfigDict(ser_json_inf_nan="constants"))
_VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD
# Errors that cross the sandbox server as themselves, by name, with their HTTP status;
# any other error is an internal one (500), whose text stays in the server's log.
_WIRE_ERRORS: dict[str, tuple[type[Exception], int]] = {
    cls.__name__: (cls, status)
    for cls, status in (
        (SandboxPathError, 403),
        (SandboxAuthError, 403),
        (SandboxUnavailableError, 503),
        (SandboxError, 400),
        (NotFoundError, 404),
        (InvalidArgumentError, 422),
    )
}
INTERNAL_ERROR = {
    "type": "InternalError",
    "message": "the sandbox server failed; its log has the details",
}


def tool(func: F) -> F:
    """Mark a method as callable by name: a tool of a sandbox type (on an engine), or an
    operation of the sandbox server (on ``SandboxBackend``).

    A tool takes JSON-compatible arguments by keyword, annotated with their types (they
    are validated against the annotations before the tool runs), and returns a
    JSON-compatible value or pydantic models. It may be sync (it then runs in a worker
    thread) or async.
    """
    setattr(func, _TOOL_MARK, True)
    return func


def tool_names(cls: type) -> tuple[str, ...]:
    """The names of the methods of ``cls`` marked with :func:`tool`, sorted."""
    return tuple(
        sorted(name for name in dir(cls) if getattr(getattr(cls, name), _TOOL_MARK, False))
    )


def to_json(value: Any) -> Any:
    """``value`` as JSON-compatible data (pydantic models become dicts)."""
    return _ANY.dump_python(value, mode="json")


def arguments_to_json(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a call of ``name`` as JSON, as every call by name sends them.

    Raises :class:`InvalidArgumentError` naming the argument when JSON cannot carry it:
    an object of another type, a NaN or an infinity, or text with a lone surrogate.
    """
    converted = {}
    for key, value in arguments.items():
        try:
            converted[key] = _ARGUMENT.dump_python(value, mode="json")
            json.dumps(converted[key], ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (PydanticSerializationError, ValueError) as exc:
            raise InvalidArgumentError(f"{name}.{key}", f"must be JSON: {exc}") from None
    return converted


@dataclass(frozen=True)
class Contract:
    """What a method called by name takes and returns, read from its annotations."""

    name: str
    signature: inspect.Signature
    parameters: dict[str, TypeAdapter[Any]]
    result: TypeAdapter[Any]

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of the call, validated (JSON becomes models).

        Raises :class:`InvalidArgumentError` naming the argument and the rule.
        """
        try:
            bound = self.signature.bind(**arguments)
        except TypeError as exc:
            raise InvalidArgumentError(self.name, f"bad arguments: {exc}") from None
        validated: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if self.signature.parameters[name].kind is _VAR_KEYWORD:
                for key, item in value.items():
                    validated[key] = self._check(key, self.parameters[name], item)
            else:
                validated[name] = self._check(name, self.parameters[name], value)
        return validated

    def _check(self, name: str, adapter: TypeAdapter[Any], value: Any) -> Any:
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
            raise InvalidArgumentError(f"{self.name}.{name}{where}", first["msg"]) from None

    def by_name(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments of a Python call, every one named (a TypeError if they do not fit)."""
        named: dict[str, Any] = {}
        for name, value in self.signature.bind(*args, **kwargs).arguments.items():
            if self.signature.parameters[name].kind is _VAR_KEYWORD:
                named.update(value)
            else:
                named[name] = value
        return named


@functools.cache
def contract(func: Callable[..., Any]) -> Contract:
    """The contract of method ``func`` (as found on its class, ``self`` first).

    Raises NameError when an annotation cannot be resolved at run time, and TypeError for
    parameters that cannot be given by name.
    """
    hints = typing.get_type_hints(func, include_extras=True)
    signature = inspect.signature(func)
    parameters = list(signature.parameters.values())[1:]
    for parameter in parameters:
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.VAR_POSITIONAL):
            raise TypeError(
                f"{func.__qualname__}: a method called by name takes its arguments by "
                f"keyword, so {parameter.name!r} cannot be positional-only or *args"
            )
    return Contract(
        name=func.__name__,
        signature=signature.replace(parameters=parameters),
        parameters={p.name: TypeAdapter(hints.get(p.name, Any)) for p in parameters},
        result=TypeAdapter(hints.get("return", Any)),
    )


def validate_call(
    definition: type, name: str, arguments: dict[str, Any], *, owner: str
) -> dict[str, Any]:
    """The keyword arguments of a call of the marked method ``name`` of ``definition``,
    validated from JSON ``arguments`` against its signature.

    Only the :func:`tool_names` of ``definition`` can be called: ``owner`` names the callee
    in the :class:`SandboxError` for any other name.
    """
    names = tool_names(definition)
    if name not in names:
        raise SandboxError(f"{owner} has no tool {name!r}; its tools are {', '.join(names)}")
    return contract(getattr(definition, name)).validate(arguments)


async def call_by_name(
    definition: type,
    target: object,
    name: str,
    arguments: dict[str, Any],
    *,
    owner: str,
    run_blocking: Callable[[Callable[[], Any]], Awaitable[Any]],
) -> Any:
    """Run the marked method ``name`` of ``target`` with JSON ``arguments``; return JSON.

    ``definition`` is the class whose method defines the operation (see
    :func:`validate_call`). A sync method runs through ``run_blocking`` (in a thread).
    """
    kwargs = validate_call(definition, name, arguments, owner=owner)
    method = getattr(target, name)
    if inspect.iscoroutinefunction(method):
        result = await method(**kwargs)
    else:
        result = await run_blocking(functools.partial(method, **kwargs))
    return to_json(result)


# -- the caller's side ---------------------------------------------------------------


class Caller(Protocol):
    """What sends a call by name and waits for the JSON answer (a handle)."""

    def call(self, name: str, /, **arguments: Any) -> Any: ...


class AsyncCaller(Protocol):
    """What sends a call by name and awaits the JSON answer (a handle, a remote backend)."""

    async def acall(self, name: str, /, **arguments: Any) -> Any: ...


class _ProxyBase:
    def __init__(self, func: Callable[..., Any]) -> None:
        self._func = func
        self.__doc__ = func.__doc__

    def _like_func(self, method: F) -> F:
        """``method``, introspected as the operation's method: name, docs, signature."""
        functools.update_wrapper(method, self._func, updated=())
        del method.__dict__["__wrapped__"]  # its signature would show ``self``
        method.__signature__ = contract(self._func).signature  # type: ignore[attr-defined]
        return method


class Proxy(_ProxyBase, Generic[P, R]):
    """A blocking method that calls the operation of the same signature by name."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, obj: Caller, owner: type[Any]) -> Callable[P, R]: ...
    def __get__(self, obj: Caller | None, owner: type[Any]) -> Self | Callable[P, R]:
        if obj is None:
            return self
        terms = contract(self._func)

        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            answer = obj.call(terms.name, **terms.by_name(args, kwargs))
            result: R = terms.result.validate_python(answer)
            return result

        return self._like_func(call)


class AsyncProxy(_ProxyBase, Generic[P, R]):
    """An async method that calls the operation of the same signature by name."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(
        self, obj: AsyncCaller, owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def __get__(
        self, obj: AsyncCaller | None, owner: type[Any]
    ) -> Self | Callable[P, Coroutine[Any, Any, R]]:
        if obj is None:
            return self
        terms = contract(self._func)

        async def acall(*args: P.args, **kwargs: P.kwargs) -> R:
            answer = await obj.acall(terms.name, **terms.by_name(args, kwargs))
            result: R = terms.result.validate_python(answer)
            return result

        return self._like_func(acall)


@overload
def proxies(
    func: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]],
) -> tuple[Proxy[P, R], AsyncProxy[P, R]]: ...
@overload
def proxies(func: Callable[Concatenate[Any, P], R]) -> tuple[Proxy[P, R], AsyncProxy[P, R]]: ...
def proxies(func: Callable[..., Any]) -> tuple[Proxy[Any, Any], AsyncProxy[Any, Any]]:
    """The blocking and the async method calling tool ``func`` by name (e.g.
    ``read_file, aread_file = proxies(FilesystemSandboxEngine.read_file)``)."""
    return Proxy(func), AsyncProxy(func)


def async_proxy(
    func: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]],
) -> AsyncProxy[P, R]:
    """The async method calling operation ``func`` by name."""
    return AsyncProxy(func)


# -- errors across the server --------------------------------------------------------


def error_to_json(exc: Exception) -> tuple[int, dict[str, str]]:
    """The HTTP status and the ``{"type", "message"}`` (plus ``field`` and ``rule`` of an
    invalid argument) the server answers for ``exc``; 500 and :data:`INTERNAL_ERROR`, which
    tells nothing of ``exc``, for an error that does not cross as itself."""
    for cls in type(exc).__mro__:
        kind, status = _WIRE_ERRORS.get(cls.__name__, (None, 500))
        if kind is cls:
            payload = {"type": cls.__name__, "message": str(exc)}
            if isinstance(exc, InvalidArgumentError):
                payload |= {"field": exc.field, "rule": exc.rule}
            return status, payload
    return 500, dict(INTERNAL_ERROR)


def error_from_json(payload: dict[str, Any]) -> Exception:
    """The error :func:`error_to_json` encoded; a :class:`BackendError` for other errors."""
    kind, _status = _WIRE_ERRORS.get(str(payload.get("type")), (None, 500))
    message = str(payload.get("message", ""))
    if kind is InvalidArgumentError:
        return InvalidArgumentError(str(payload.get("field")), str(payload.get("rule")))
    if kind is None:
        return BackendError(f"sandbox server: {message}")
    return kind(message)
