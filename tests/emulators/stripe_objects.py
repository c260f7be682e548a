"""The Stripe API objects the emulator answers with, field for field as the API sends them.

Each builder writes every field of its object that the API returns by default (API version
`2026-10-28.endive`, the official SDK's), nullable ones as null, and nothing else: a field
that only appears when expanded or included (`line_items`, a customer's `subscriptions`) is
left out, as the API leaves it out. tests/emulators/test_stripe_fidelity.py holds every object
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


def price(pid: str, *, created: int, unit_amount: int, product: str) -> Obj:
    return {
        "id": pid,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": "usd",
        "currency_options": None,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": product,
        "recurring": {
            "interval": "month",
            "interval_count": 1,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def plan(pid: str, *, created: int, amount: int, product: str) -> Obj:
    """The legacy mirror of a recurring price that every subscription item still carries."""
    return {
        "id": pid,
        "object": "plan",
        "active": True,
        "amount": amount,
        "amount_decimal": str(amount),
        "billing_scheme": "per_unit",
        "created": created,
        "currency": "usd",
        "interval": "month",
        "interval_count": 1,
        "livemode": False,
        "metadata": {},
        "meter": None,
        "nickname": None,
        "product": product,
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def subscription_item(
    iid: str, *, sub_id: str, created: int, price_id: str, unit_amount: int, period: tuple[int, int]
) -> Obj:
    product = f"prod_{price_id.removeprefix('price_')}"
    return {
        "id": iid,
        "object": "subscription_item",
        "billed_until": None,
        "billing_thresholds": None,
        "created": created,
        "current_period_end": period[1],
        "current_period_start": period[0],
        "current_trial": None,
        "discounts": [],
        "metadata": {},
        "plan": plan(price_id, created=created, amount=unit_amount, product=product),
        "price": price(price_id, created=created, unit_amount=unit_amount, product=product),
        "quantity": 1,
        "subscription": sub_id,
        "tax_rates": [],
    }


def subscription(
    sub_id: str,
    *,
    customer: str,
    created: int,
    status: str,
    items: list[Obj],
    metadata: dict[str, str],
    canceled_at: int | None = None,
) -> Obj:
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": created,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "flexible", "updated_at": created},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": canceled_at,
        "cancellation_details": {"comment": None, "feedback": None, "feedback_option": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": created,
        "currency": "usd",
        "customer": customer,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": canceled_at,
        "invoice_settings": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": {"account": None, "type": "self"},
        },
        "items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": metadata,
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "presentment_details": None,
        "schedule": None,
        "start_date": created,
        "status": status,
        "status_details": None,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {
            "end_behavior": {"billing_cycle_anchor": None, "missing_payment_method": "create_invoice"}
        },
        "trial_start": None,
    }


def charge(
    cid: str,
    *,
    created: int,
    amount: int,
    amount_refunded: int,
    customer: str | None,
    payment_intent: str,
    metadata: dict[str, str],
) -> Obj:
    return {
        "id": cid,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "authorization_code": None,
        "balance_transaction": f"txn_{cid.removeprefix('ch_')}",
        "billing_details": {"address": None, "email": None, "name": None, "phone": None, "tax_id": None},
        "calculated_statement_descriptor": "PATCHBAY",
        "captured": True,
        "created": created,
        "currency": "usd",
        "customer": customer,
        "description": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "level3": None,
        "livemode": False,
        "metadata": metadata,
        "on_behalf_of": None,
        "outcome": None,
        "paid": True,
        "payment_intent": payment_intent,
        "payment_method": f"pm_{cid.removeprefix('ch_')}",
        "payment_method_details": None,
        "presentment_details": None,
        "radar_options": None,
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": amount_refunded >= amount,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer": None,
        "transfer_data": None,
        "transfer_group": None,
    }


def invoice(
    iid: str, *, created: int, customer: str, amount_due: int, attempt_count: int, next_attempt: int | None
) -> Obj:
    """An open subscription invoice whose payment failed (what `invoice.payment_failed` carries)."""
    return {
        "id": iid,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Patchbay",
        "account_tax_ids": None,
        "amount_due": amount_due,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_paid_off_stripe": 0,
        "amount_remaining": amount_due,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": attempt_count,
        "attempted": True,
        "auto_advance": True,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": created,
        "currency": "usd",
        "custom_fields": None,
        "customer": customer,
        "customer_account": None,
        "customer_address": None,
        "customer_email": None,
        "customer_name": None,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": created,
        "ending_balance": 0,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"account": None, "type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {"object": "list", "data": [], "has_more": False, "url": f"/v1/invoices/{iid}/lines"},
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": next_attempt,
        "number": None,
        "on_behalf_of": None,
        "parent": None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": created,
        "period_start": created,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "open",
        "status_details": None,
        "status_transitions": {
            "finalized_at": created,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": amount_due,
        "subtotal_excluding_tax": amount_due,
        "test_clock": None,
        "threshold_reason": None,
        "total": amount_due,
        "total_discount_amounts": [],
        "total_excluding_tax": amount_due,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": created,
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
