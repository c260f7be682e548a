"""The Stripe API through the official SDK: customers, Checkout sessions, subscriptions, events
and meter events. The one module that talks to Stripe; built from the settings at start-up.

Every call is async (the SDK's aiohttp client), so no request's event loop ever waits on Stripe.
Errors Stripe answers with surface as `PaymentsError` (a 502 on the admin API), saying what
Stripe said; the secret key never appears in one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from billing.credit_packs import CreditPack
from billing.tiers import TierTable, default_table, tier_prices, with_prices
from foundation.errors import RequestError
from foundation.tiers import Tier
from server.settings import Settings, parse_tier_prices

if TYPE_CHECKING:
    import stripe

T = TypeVar("T")
PURCHASES_OFF = (
    "purchases are off: set PATCHBAY_STRIPE_SECRET_KEY (and PATCHBAY_STRIPE_WEBHOOK_SECRET) to sell credit "
    "packs and subscriptions; until then credits come from `patchbay credits grant`"
)


def commercial_table(settings: Settings) -> TierTable:
    """The packaged tier table with the Stripe prices PATCHBAY_STRIPE_TIER_PRICES names: the one
    table checkout, the webhook, the grace sweeper and the plans page read (`Services.tiers`)."""
    return with_prices(default_table(), parse_tier_prices(settings.stripe_tier_prices))


class PurchasesOffError(RequestError):
    code = "purchases_off"

    def __init__(self, message: str = PURCHASES_OFF) -> None:
        super().__init__(message)


class WebhookSignatureError(ValueError):
    """A webhook body whose `Stripe-Signature` does not verify: not from Stripe, or altered."""


class PaymentsError(RequestError):
    """Stripe refused or could not be reached."""

    code = "payments_error"


@dataclass(frozen=True, slots=True)
class Checkout:
    id: str
    url: str


class StripePayments:
    """One per process (`Services.payments`), present only when a secret key is set."""

    def __init__(
        self,
        secret_key: str,
        *,
        webhook_secret: str | None,
        tiers: TierTable,
        meter_event_name: str,
        api_base: str | None = None,
    ) -> None:
        # The SDK loads here, so a server without payments never imports it (0.18 s of each
        # process's start-up: every worker, every CLI command).
        import stripe

        self._http = stripe.AIOHTTPClient()
        addresses: Any = {"api": api_base.rstrip("/")} if api_base else None
        self._client = stripe.StripeClient(secret_key, base_addresses=addresses, http_client=self._http)
        self.webhook_secret = webhook_secret
        self.tiers = tiers
        """The tier table with this account's prices (`Services.tiers`): prices, included credits, grace."""
        self.tier_prices: Mapping[Tier, tuple[str, ...]] = tier_prices(tiers)
        self.meter_event_name = meter_event_name

    @classmethod
    def from_settings(cls, settings: Settings, tiers: TierTable | None = None) -> StripePayments | None:
        if settings.stripe_secret_key is None:
            return None
        tiers = tiers if tiers is not None else commercial_table(settings)
        return cls(
            settings.stripe_secret_key.get_secret_value(),
            webhook_secret=settings.stripe_webhook_secret.get_secret_value()
            if settings.stripe_webhook_secret
            else None,
            tiers=tiers,
            meter_event_name=settings.stripe_meter_event_name,
            api_base=settings.stripe_api_base,
        )

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    def verify(self, payload: bytes, signature: str | None) -> None:
        """Check the `Stripe-Signature` (the SDK's `Webhook.construct_event`: HMAC over the exact
        bytes, within its tolerance); raises `WebhookSignatureError`, or ValueError for a body
        that is not JSON. Needs the webhook secret: the caller checks it is set."""
        import stripe

        assert self.webhook_secret is not None
        try:
            stripe.Webhook.construct_event(payload, signature, self.webhook_secret)
        except stripe.SignatureVerificationError:
            raise WebhookSignatureError("the Stripe-Signature header does not verify for this body") from None

    async def create_customer(self, org_id: str, org_name: str) -> str:
        customer = await self._call(
            self._client.v1.customers.create_async({"name": org_name, "metadata": {"org_id": org_id}})
        )
        return str(customer.id)

    async def checkout_credits(
        self, org_id: str, customer_id: str, pack: CreditPack, *, success_url: str, cancel_url: str
    ) -> Checkout:
        """A one-off payment for a credit pack; the webhook grants the credits once it is paid."""
        metadata = {"org_id": org_id, "pack": pack.id, "credits_micro_usd": str(pack.credits)}
        session = await self._call(
            self._client.v1.checkout.sessions.create_async(
                {
                    "mode": "payment",
                    "customer": customer_id,
                    "client_reference_id": org_id,
                    "metadata": metadata,
                    # Copied onto the charge, so a refund can be traced to the pack it bought.
                    "payment_intent_data": {"metadata": metadata},
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": "usd",
                                "unit_amount": pack.price_cents,
                                "product_data": {"name": pack.name},
                            },
                        }
                    ],
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                }
            )
        )
        return Checkout(str(session.id), str(session.url))

    async def checkout_subscription(
        self, org_id: str, customer_id: str, tier: Tier, *, success_url: str, cancel_url: str
    ) -> Checkout:
        """A recurring subscription to `tier`'s prices (its plan, and any flat BYOK platform fee)."""
        prices = self.tier_prices.get(tier)
        if not prices:
            raise RequestError(
                f"tier {tier.value!r} has no Stripe price: add it to PATCHBAY_STRIPE_TIER_PRICES "
                "(or `stripe_prices` in the tier table) "
                f"({', '.join(t.value for t in self.tier_prices) or 'none has one yet'})",
                param="tier",
            )
        session = await self._call(
            self._client.v1.checkout.sessions.create_async(
                {
                    "mode": "subscription",
                    "customer": customer_id,
                    "client_reference_id": org_id,
                    "metadata": {"org_id": org_id, "tier": tier.value},
                    "subscription_data": {"metadata": {"org_id": org_id, "tier": tier.value}},
                    "line_items": [{"price": price, "quantity": 1} for price in prices],
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                }
            )
        )
        return Checkout(str(session.id), str(session.url))

    async def subscription(self, subscription_id: str) -> dict[str, Any]:
        sub = await self._call(self._client.v1.subscriptions.retrieve_async(subscription_id))
        return sub.to_dict()

    async def events_since(self, created_gte: int, *, limit: int = 100) -> list[stripe.Event]:
        """Every event from `created_gte` on (Unix seconds), oldest first; Stripe keeps 30 days."""
        found: list[stripe.Event] = []
        params: Any = {"created": {"gte": created_gte}, "limit": limit}
        while True:
            page = await self._call(self._client.v1.events.list_async(params))
            found.extend(page.data)
            if not page.has_more or not page.data:
                return list(reversed(found))
            params["starting_after"] = page.data[-1].id

    async def report_usage(self, customer_id: str, value: int, identifier: str, timestamp: int) -> None:
        """Report `value` (micro-USD of BYOK surcharge) to the billing meter; Stripe drops a
        repeated `identifier`, so a retry never bills twice."""
        await self._call(
            self._client.v1.billing.meter_events.create_async(
                {
                    "event_name": self.meter_event_name,
                    "payload": {"stripe_customer_id": customer_id, "value": str(value)},
                    "identifier": identifier,
                    "timestamp": timestamp,
                }
            )
        )

    @staticmethod
    async def _call(pending: Awaitable[T]) -> T:
        import stripe

        try:
            return await pending
        except stripe.StripeError as exc:
            message = exc.user_message or "Stripe refused the request"
            raise PaymentsError(f"Stripe: {message}") from None
