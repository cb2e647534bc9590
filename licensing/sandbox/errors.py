"""Stripe-shaped API errors raised by the sandbox handlers and turned into JSON responses."""

from __future__ import annotations

from typing import Any


class StripeApiError(Exception):
    """An error the sandbox answers with, shaped like Stripe's ``{"error": {...}}`` body."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body Stripe would send for this error."""
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            err["code"] = self.code
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            err["param"] = self.param
        if self.decline_code is not None:
            err["decline_code"] = self.decline_code
        return {"error": err}

    @property
    def saved_for_idempotency(self) -> bool:
        """Whether Stripe would save this result under the request's idempotency key."""
        # Stripe saves a result once the endpoint began executing; validation failures
        # (400/404), auth failures, conflicts and rate limits are not saved.
        return self.status not in (400, 401, 404, 409, 429)


def invalid_request(message: str, *, param: str | None = None, code: str | None = None) -> StripeApiError:
    """A 400 invalid_request_error."""
    return StripeApiError(400, "invalid_request_error", message, code=code, param=param)


def unknown_parameter(name: str) -> StripeApiError:
    """A 400 for a parameter the endpoint does not know."""
    return invalid_request(
        f"Received unknown parameter: {name}", param=name, code="parameter_unknown"
    )


def missing_parameter(name: str) -> StripeApiError:
    """A 400 for a required parameter that was not sent."""
    return invalid_request(
        f"Missing required param: {name}.", param=name, code="parameter_missing"
    )


def resource_missing(kind: str, ident: str, *, param: str = "id") -> StripeApiError:
    """A 404 ``No such <kind>`` error (a 400 when the id came in as a parameter, like Stripe)."""
    status = 404 if param == "id" else 400
    return StripeApiError(
        status,
        "invalid_request_error",
        f"No such {kind}: '{ident}'",
        code="resource_missing",
        param=param,
    )


def card_error(message: str, *, code: str, decline_code: str | None = None, param: str | None = None) -> StripeApiError:
    """A 402 card_error."""
    return StripeApiError(
        402, "card_error", message, code=code, decline_code=decline_code, param=param
    )


def authentication_error(message: str) -> StripeApiError:
    """A 401 for a missing or refused API key (never echoing the key)."""
    return StripeApiError(401, "invalid_request_error", message)
