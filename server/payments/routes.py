"""The HTTP surface of payments: `POST /v1/stripe/webhook` and the admin API's checkout.

- The webhook is called by Stripe, not by a Patchbay caller: no API key, the `Stripe-Signature`
  header is its authentication, verified by the SDK over the exact body bytes. A missing or
  bad signature (or one older than the SDK's five-minute tolerance) is a 400 that changes
  nothing; a verified event is applied once (`server.payments.webhook`) and answered 200, also
  when Patchbay does not act on its type. An error applying it is a 5xx, so Stripe retries.
- `POST /admin/v1/orgs/{org}/billing/checkout` (the `billing` permission) makes a Stripe
  Checkout session for a credit pack or a tier subscription and answers its URL, where the
  admin's browser goes to pay. Stripe sends the buyer back to the server's own web UI.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from billing.credit_packs import pack as find_pack
from foundation.errors import RequestError
from foundation.tiers import Tier
from server import accounts
from server.admin.auth import require_admin
from server.errors import error_response
from server.payments.client import Checkout, PurchasesOffError, StripePayments
from server.payments.tables import StripeCustomer
from server.services import Services

webhook_router = APIRouter()
admin_router = APIRouter(prefix="/admin/v1", dependencies=[Depends(require_admin)], tags=["admin"])
WEBHOOK_PATH = "/v1/stripe/webhook"


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated[Services, Depends(services)]


@webhook_router.post(WEBHOOK_PATH, include_in_schema=False)
async def stripe_webhook(request: Request) -> JSONResponse:
    svc: Services = request.app.state.services
    payments, webhook = svc.payments, svc.webhook
    if payments is None or webhook is None or payments.webhook_secret is None:
        return error_response(
            503,
            "purchases_off",
            "the Stripe webhook is off: set PATCHBAY_STRIPE_SECRET_KEY and PATCHBAY_STRIPE_WEBHOOK_SECRET",
        )
    payload = await request.body()
    try:
        payments.verify(payload, request.headers.get("stripe-signature"))
    except ValueError:  # WebhookSignatureError, or a body that is not JSON
        return error_response(
            400, "bad_signature", "the Stripe-Signature header does not verify for this body"
        )
    applied = await webhook.apply(orjson.loads(payload))
    return JSONResponse({"received": True, "duplicate": applied.duplicate, "outcome": applied.outcome})


class CheckoutIn(BaseModel):
    kind: Literal["credits", "subscription"]
    pack: str | None = Field(
        default=None, description="kind `credits`: the credit pack's id (docs/billing.md)."
    )
    tier: Tier | None = Field(default=None, description="kind `subscription`: the tier to subscribe to.")


class CheckoutOut(BaseModel):
    id: str = Field(description="The Stripe Checkout session id.")
    url: str = Field(description="Stripe's payment page; send the browser there.")


@admin_router.post("/orgs/{org}/billing/checkout", response_model=CheckoutOut)
async def checkout(org: str, body: CheckoutIn, request: Request, svc: ServicesDep) -> CheckoutOut:
    """A Stripe Checkout session for a credit pack or a tier subscription (409 `purchases_off` without Stripe)."""
    payments = svc.payments
    if payments is None:
        raise PurchasesOffError()
    async with svc.db.session() as s:
        found = await accounts.get_org(s, org)
        org_id, org_name = found.id, found.name
    base = (svc.settings.public_url or str(request.base_url)).rstrip("/")
    urls = {
        "success_url": f"{base}/ui/#/billing?checkout=done",
        "cancel_url": f"{base}/ui/#/billing?checkout=cancelled",
    }
    customer = await customer_for(svc, payments, org_id, org_name)
    made: Checkout
    if body.kind == "credits":
        if body.pack is None:
            raise RequestError("name the credit pack to buy", param="pack")
        made = await payments.checkout_credits(org_id, customer, find_pack(body.pack), **urls)
    else:
        if body.tier is None:
            raise RequestError("name the tier to subscribe to", param="tier")
        made = await payments.checkout_subscription(org_id, customer, body.tier, **urls)
    return CheckoutOut(id=made.id, url=made.url)


async def customer_for(svc: Services, payments: StripePayments, org_id: str, org_name: str) -> str:
    """The org's Stripe customer, made at its first checkout (one per org, whichever replica races)."""
    async with svc.db.session() as s:
        known = await s.scalar(select(StripeCustomer.customer_id).where(StripeCustomer.org_id == org_id))
    if known is not None:
        return known
    made = await payments.create_customer(org_id, org_name)
    try:
        async with svc.db.session() as s:
            s.add(StripeCustomer(org_id=org_id, customer_id=made))
        return made
    except IntegrityError:
        async with svc.db.session() as s:
            winner = await s.scalar(select(StripeCustomer.customer_id).where(StripeCustomer.org_id == org_id))
        assert winner is not None
        return winner
