"""The Stripe API objects the emulator answers with, field for field as the API sends them.

Each builder writes every field of its object that the API returns by default (API version
`2026-10-28.endive`, the official SDK's), nullable ones as null, and nothing else: a field
that only appears when expanded or included (`line_items`, a customer's `subscriptions`) is
left out, as the API leaves it out (subscriptions, charges and invoices are in
`stripe_billing_objects`). tests/emulators/test_stripe_fidelity.py holds every object
to the SDK's typed resource classes: no field they do not know, none they know missing.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def customer(cid: str, *, created: int, metadata: dict[str, str], name: str | None, email: str | None) -> Obj:
    return {
        "id": cid,
        "object": "customer",
        "address": None,
        "balance": 0,
        "business_name": None,
        "created": created,
        "currency": None,
        "customer_account": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email,
        "individual_name": None,
        "invoice_prefix": cid[-8:].upper(),
        "invoice_settings": None,
        "livemode": False,
        "metadata": metadata,
        "name": name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def checkout_session(
    sid: str,
    *,
    created: int,
    mode: str,
    url: str,
    customer: str | None,
    client_reference_id: str | None,
    metadata: dict[str, str],
    amount_total: int | None,
    success_url: str | None,
    cancel_url: str | None,
) -> Obj:
    """An open session: `status` "open", `payment_status` "unpaid" until it is completed."""
    return {
        "id": sid,
        "object": "checkout.session",
        "adaptive_pricing": None,
        "after_expiration": None,
        "allow_promotion_codes": None,
        "allowed_payment_method_types": None,
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "branding_settings": None,
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": "usd",
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": customer,
        "customer_account": None,
        "customer_creation": None if customer else "if_required",
        "customer_details": None,
        "customer_email": None,
        "discounts": [],
        "excluded_payment_method_types": None,
        "expires_at": created + 24 * 3600,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "managed_payments": None,
        "metadata": metadata,
        "mode": mode,
        "name_collection": None,
        "optional_items": None,
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always" if mode == "subscription" else None,
        "payment_method_configuration_details": None,
        "payment_method_options": None,
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": None,
        "presentment_details": None,
        "recovered_from": None,
        "redirect_on_completion": None,
        "return_url": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": success_url,
        "tax_id_collection": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        "url": url,
        "wallet_options": None,
    }


def meter_event(
    *, event_name: str, identifier: str, payload: dict[str, str], created: int, timestamp: int
) -> Obj:
    return {
        "object": "billing.meter_event",
        "created": created,
        "event_name": event_name,
        "identifier": identifier,
        "livemode": False,
        "payload": payload,
        "timestamp": timestamp,
    }


def event(
    eid: str, *, type: str, created: int, obj: Obj, previous: dict[str, Any] | None, api_version: str
) -> Obj:
    data: Obj = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": eid,
        "object": "event",
        "account": None,
        "api_version": api_version,
        "context": None,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }


def list_of(data: list[Obj], *, url: str, has_more: bool) -> Obj:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def error(
    message: str, *, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> Obj:
    body: Obj = {"type": type, "message": message}
    if param is not None:
        body["param"] = param
    if code is not None:
        body["code"] = code
    return {"error": body}
