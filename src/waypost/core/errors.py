"""One error tree. Each error knows its HTTP status, whether a retry may help, and the error
type names the OpenAI and Anthropic formats use; the wire modules render it from those."""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    retryable: bool = False
    openai_type: str = "server_error"
    anthropic_type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after
        self.provider = provider
        self.upstream_status = upstream_status

    @property
    def anthropic_status(self) -> int:
        return self.status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class BadRequest(GatewayError):
    status = 400
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class Unauthorized(GatewayError):
    status = 401
    openai_type = "authentication_error"
    anthropic_type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    openai_type = "permission_error"
    anthropic_type = "permission_error"


class ModelNotFound(GatewayError):
    status = 404
    openai_type = "invalid_request_error"
    anthropic_type = "not_found_error"
    code = "model_not_found"


class NotFound(GatewayError):
    status = 404
    openai_type = "invalid_request_error"
    anthropic_type = "not_found_error"


class MethodNotAllowed(GatewayError):
    """A route exists but not for this method; ``allow`` lists the methods it takes."""

    status = 405
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"

    def __init__(self, message: str, *, allow: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allow = allow


class Conflict(GatewayError):
    """The request clashes with what exists (a taken name, a read-only object)."""

    status = 409
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class PayloadTooLarge(GatewayError):
    status = 413
    openai_type = "invalid_request_error"
    anthropic_type = "request_too_large"


class RequestTimeout(GatewayError):
    """The client did not send its request (headers or body) in time."""

    status = 408
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class HeadersTooLarge(GatewayError):
    """Too many request header fields, or too many bytes of them."""

    status = 431
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class RateLimited(GatewayError):
    status = 429
    retryable = True
    openai_type = "rate_limit_error"
    anthropic_type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(GatewayError):
    """A budget that applies to the request has no room for it (docs/metering.md, "Budgets").
    429 by default, 402 when configured; not retried (by the router, nor by SDKs: the answer says
    so), with ``Retry-After`` when the budget resets."""

    status = 429
    openai_type = "insufficient_quota"
    anthropic_type = "rate_limit_error"
    code = "budget_exceeded"

    def __init__(self, message: str, *, status: int = 429, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        if status == 402:
            self.anthropic_type = "billing_error"


class UpstreamError(GatewayError):
    """The provider failed or answered something we cannot use."""

    status = 502
    retryable = True
    openai_type = "upstream_error"
    anthropic_type = "api_error"


class UpstreamBadRequest(GatewayError):
    """The provider rejected the request as invalid: the caller's fault, not worth retrying."""

    status = 400
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class UpstreamAuthError(GatewayError):
    """The provider refused the gateway's credentials: a gateway configuration problem."""

    status = 502
    openai_type = "upstream_error"
    anthropic_type = "api_error"


class Overloaded(GatewayError):
    status = 503
    retryable = True
    openai_type = "service_unavailable"
    anthropic_type = "overloaded_error"

    @property
    def anthropic_status(self) -> int:
        return 529


class ModelDisabled(GatewayError):
    """The model exists but cannot be called: its credentials are missing (the message says
    which). Nothing is sent upstream; an operator fixes it, a retry does not."""

    status = 503
    openai_type = "service_unavailable"
    anthropic_type = "api_error"
    code = "model_disabled"


class UpstreamTimeout(GatewayError):
    status = 504
    retryable = True
    openai_type = "timeout"
    anthropic_type = "timeout_error"


class ShuttingDown(GatewayError):
    """The gateway stopped (SIGTERM) and its grace period ended before this request did: a
    stream ends with this error event, a request not yet answered gets it as its answer."""

    status = 503
    retryable = True
    openai_type = "service_unavailable"
    anthropic_type = "overloaded_error"


class StreamInterrupted(UpstreamError):
    """The upstream stream broke after it began (reset, stall, or an error event)."""


class UpstreamInvalid(UpstreamError):
    """The upstream sent something its own format does not allow: a body or stream frame that
    is not JSON, not UTF-8, over a size limit, or framed wrongly. Its message says so."""


def from_upstream_status(
    status: int,
    message: str,
    *,
    provider: str | None = None,
    retry_after: float | None = None,
) -> GatewayError:
    """Map an upstream HTTP status to the error tree (once, at the provider boundary)."""
    kwargs: dict = {"provider": provider, "upstream_status": status, "retry_after": retry_after}
    if status == 429:
        return RateLimited(message, **kwargs)
    if status in (503, 529):
        return Overloaded(message, **kwargs)
    if status in (408, 504):
        return UpstreamTimeout(message, **kwargs)
    if status in (401, 403):
        return UpstreamAuthError(message, **kwargs)
    if status == 404:
        return UpstreamBadRequest(message, **kwargs)
    if status == 413:
        return PayloadTooLarge(message, **kwargs)
    if 400 <= status < 500:
        return UpstreamBadRequest(message, **kwargs)
    return UpstreamError(message, **kwargs)
