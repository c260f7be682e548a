"""The Stripe emulator speaks the real wire: every object it answers with or delivers has exactly
the fields the official SDK's typed resource classes declare (none unknown, none missing but
those the API sends only when expanded or included), down through every nested object, and
the official `stripe` client parses its answers into its own types unchanged.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any, ForwardRef

import pytest
import stripe
from stripe._stripe_object import StripeObject, UntypedStripeObject
from stripe.checkout import Session

from tests.emulators import stripe_billing_objects as billing_objects
from tests.emulators import stripe_objects as objects
from tests.emulators.harness import ServedApp
from tests.emulators.stripe_emulator import SECRET_KEY, StripeEmulator, decode_form, signature_header

PRICES = {"price_starter": 1900, "price_pro": 9900, "price_byok_fee": 500}

# Fields the API leaves out unless a request expands or includes them, or that only a deleted
# object carries (`deleted: true`): the SDK types them Optional like nullable ones.
NOT_BY_DEFAULT: dict[str, set[str]] = {
    "Session": {"line_items"},
    "TotalDetails": {"breakdown"},
    "FraudDetails": {"stripe_report", "user_report"},
    "Customer": {
        "cash_balance",
        "invoice_credit_balance",
        "sources",
        "subscriptions",
        "tax",
        "tax_ids",
        "deleted",
    },
    "Price": {"currency_options", "tiers", "deleted"},
    "Plan": {"tiers", "deleted"},
    "SubscriptionItem": {"deleted"},
    "Charge": {"refunds"},
    "Invoice": {"confirmation_secret", "payments", "deleted"},
    "Data": {"previous_attributes"},
}


def _fields(cls: type) -> dict[str, Any]:
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for name, hint in getattr(klass, "__annotations__", {}).items():
            if typing.get_origin(hint) is not typing.ClassVar and klass.__module__.startswith("stripe."):
                hints[name] = hint
    return {k: v for k, v in hints.items() if not k.startswith("_")}


def _classes(hint: Any) -> Iterator[type]:
    """The StripeObject classes a field's annotation names (through Optional, Union, List, ListObject)."""
    if isinstance(hint, (ForwardRef, str)):
        found = getattr(stripe, hint.__forward_arg__ if isinstance(hint, ForwardRef) else hint, None)
        if isinstance(found, type):
            yield found
        return
    if (
        isinstance(hint, type)
        and issubclass(hint, StripeObject)
        and not issubclass(hint, UntypedStripeObject)
        and hint is not stripe.ListObject
    ):
        yield hint
    for arg in typing.get_args(hint):
        yield from _classes(arg)


def mismatches(obj: dict[str, Any], cls: type, where: str = "") -> Iterator[str]:
    """Every field of `obj` (recursively) the SDK does not declare, and every declared one missing."""
    fields = _fields(cls)
    where = where or cls.__name__
    for name in sorted(set(obj) - set(fields)):
        yield f"unknown {where}.{name}"
    for name in sorted(set(fields) - set(obj) - NOT_BY_DEFAULT.get(cls.__name__, set())):
        yield f"missing {where}.{name}"
    for name, value in obj.items():
        if name in fields:
            yield from _nested(value, fields[name], f"{where}.{name}")


def _nested(value: Any, hint: Any, where: str) -> Iterator[str]:
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nested(item, hint, f"{where}[{i}]")
    elif isinstance(value, dict):
        if value.get("object") == "list":
            assert set(value) == {"object", "data", "has_more", "url"}, where
            yield from _nested(value["data"], hint, f"{where}.data")
            return
        candidates = list(_classes(hint))
        if candidates:
            yield from mismatches(value, _pick(candidates, value), where)


def _pick(candidates: list[type], value: dict[str, Any]) -> type:
    for cls in candidates:
        if getattr(cls, "OBJECT_NAME", None) == value.get("object"):
            return cls
    return candidates[0]


def every_object(emu: StripeEmulator) -> list[tuple[dict[str, Any], type]]:
    """Drive the emulator through each kind of event and return every object it holds, with its class."""
    customer = objects.customer("cus_x", created=1, metadata={"org_id": "org_a"}, name="acme", email=None)
    emu.customers["cus_x"] = customer
    pay = emu.create_session(
        {
            "mode": "payment",
            "customer": "cus_x",
            "client_reference_id": "org_a",
            "metadata": {"org_id": "org_a"},
            "line_items": [
                {
                    "quantity": "1",
                    "price_data": {"currency": "usd", "unit_amount": "1000", "product_data": {"name": "x"}},
                }
            ],
        }
    )
    sub = emu.create_session(
        {"mode": "subscription", "line_items": [{"price": "price_starter", "quantity": "1"}]}
    )
    emu.complete(pay["id"])
    emu.complete(sub["id"])
    sub_id = emu.sessions[sub["id"]]["subscription"]
    emu.change_plan(sub_id, "price_pro")
    emu.refund(emu.charge_for(pay["id"]), 400)
    emu.fail_invoice("cus_x", 9900)
    failed = emu.fail_invoice(emu.subscriptions[sub_id]["customer"], 9900, subscription=sub_id)
    emu.pay_invoice(sub_id, failed["data"]["object"]["id"])
    emu.cancel(sub_id)
    found: list[tuple[dict[str, Any], type]] = [(c, stripe.Customer) for c in emu.customers.values()]
    found += [(s, Session) for s in emu.sessions.values()]
    found += [(s, stripe.Subscription) for s in emu.subscriptions.values()]
    found += [(c, stripe.Charge) for c in emu.charges.values()]
    found += [(e, stripe.Event) for e in emu.events]
    kinds = {
        "checkout.session": Session,
        "subscription": stripe.Subscription,
        "charge": stripe.Charge,
        "invoice": stripe.Invoice,
    }
    found += [(e["data"]["object"], kinds[e["data"]["object"]["object"]]) for e in emu.events]
    meter = objects.meter_event(
        event_name="byok", identifier="i", payload={"value": "1"}, created=1, timestamp=1
    )
    return [*found, (meter, stripe.billing.MeterEvent)]


def test_every_object_has_exactly_the_sdk_fields() -> None:
    emu = StripeEmulator(prices=PRICES)
    checked = every_object(emu)
    assert {cls for _, cls in checked} >= {
        Session,
        stripe.Customer,
        stripe.Subscription,
        stripe.Charge,
        stripe.Invoice,
        stripe.Event,
        stripe.billing.MeterEvent,
    }
    problems = [p for obj, cls in checked for p in mismatches(obj, cls)]
    assert problems == []


def test_the_checker_catches_an_unknown_and_a_missing_field() -> None:
    customer = objects.customer("cus_x", created=1, metadata={}, name=None, email=None)
    customer["favourite_colour"] = "blue"
    del customer["livemode"]
    sub = StripeEmulator(prices=PRICES)
    sub.create_session({"mode": "subscription", "line_items": [{"price": "price_pro"}]})
    item = billing_objects.subscription_item(
        "si_1", sub_id="sub_1", created=1, price_id="price_pro", unit_amount=1, period=(1, 2)
    )
    item["price"]["recurring"]["extra"] = 1
    assert list(mismatches(customer, stripe.Customer)) == [
        "unknown Customer.favourite_colour",
        "missing Customer.livemode",
    ]
    assert list(mismatches(item, stripe.SubscriptionItem)) == [
        "unknown SubscriptionItem.price.recurring.extra"
    ]


def test_form_decoding_matches_the_sdk_encoding() -> None:
    from stripe._encode import _api_encode

    params = {
        "line_items": [{"price": "p", "quantity": 1}],
        "metadata": {"org_id": "o"},
        "mode": "subscription",
    }
    pairs = [(k, str(v)) for k, v in _api_encode(params)]
    assert decode_form(pairs) == {
        "line_items": [{"price": "p", "quantity": "1"}],
        "metadata": {"org_id": "o"},
        "mode": "subscription",
    }


async def test_the_sdk_parses_answers_into_its_types() -> None:
    emu = StripeEmulator(prices=PRICES)
    with ServedApp(emu.app) as served:
        http = stripe.AIOHTTPClient()
        client = stripe.StripeClient(
            SECRET_KEY, base_addresses={"api": served.url}, http_client=http, max_network_retries=0
        )
        customer = await client.v1.customers.create_async({"name": "acme", "metadata": {"org_id": "org_a"}})
        session = await client.v1.checkout.sessions.create_async(
            {
                "mode": "subscription",
                "customer": customer.id,
                "client_reference_id": "org_a",
                "line_items": [{"price": "price_pro", "quantity": 1}],
                "success_url": "https://x.test/ok",
            }
        )
        emu.complete(session.id)
        fetched = await client.v1.checkout.sessions.retrieve_async(session.id)
        sub = await client.v1.subscriptions.retrieve_async(str(fetched.subscription))
        events = await client.v1.events.list_async({"limit": 1})
        meter = await client.v1.billing.meter_events.create_async(
            {
                "event_name": "byok_surcharge",
                "payload": {"stripe_customer_id": customer.id, "value": "12"},
                "identifier": "k1",
            }
        )
        with pytest.raises(stripe.InvalidRequestError) as refused:
            await client.v1.checkout.sessions.create_async(
                {"mode": "subscription", "line_items": [{"price": "nope"}]}
            )
        await http.close_async()
    assert isinstance(customer, stripe.Customer) and customer.metadata["org_id"] == "org_a"
    assert isinstance(session, Session) and session.url and session.mode == "subscription"
    assert isinstance(fetched, Session) and fetched.payment_status == "paid"
    assert isinstance(sub, stripe.Subscription) and sub["items"].data[0].price.id == "price_pro"
    assert isinstance(sub["items"].data[0], stripe.SubscriptionItem)
    assert isinstance(events.data[0], stripe.Event) and events.has_more
    assert isinstance(meter, stripe.billing.MeterEvent) and meter.identifier == "k1"
    assert refused.value.param == "line_items[0][price]"


def test_signature_is_what_the_sdk_verifies() -> None:
    emu = StripeEmulator(prices=PRICES)
    event = emu.emit(
        "customer.created", objects.customer("cus_1", created=1, metadata={}, name=None, email=None)
    )
    body = emu.payload(event)
    import time

    now = int(time.time())
    parsed = stripe.Webhook.construct_event(body, signature_header(body, "whsec_a", now), "whsec_a")
    assert isinstance(parsed, stripe.Event) and parsed.id == event["id"]
    assert isinstance(parsed.data.object, stripe.Customer)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, signature_header(body, "whsec_b", now), "whsec_a")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body + b" ", signature_header(body, "whsec_a", now), "whsec_a")
