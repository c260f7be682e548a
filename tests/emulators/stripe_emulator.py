"""A local emulator of the Stripe API surface Patchbay uses, and Stripe's webhook deliveries.

Routes (form-encoded bodies with bracket keys, as the official SDK sends them; Bearer secret
key): `POST /v1/customers`, `GET /v1/customers/{id}`, `POST /v1/checkout/sessions` (mode
`payment` with `price_data` line items, mode `subscription` with price ids), `GET
/v1/checkout/sessions/{id}`, `GET /v1/subscriptions/{id}`, `GET /v1/events` (newest first,
`created[gte]`, `type`, `limit`, `starting_after`) and `POST /v1/billing/meter_events`;
and `GET /c/pay/{id}`, a trivial stand-in for Stripe's payment page (see `checkout_origin`).
Objects come from `stripe_objects`; errors use Stripe's `{"error": {type, message, param}}`.

What a customer does in Stripe's pages is a method here (`complete`, `change_plan`, `cancel`,
`refund`, `fail_invoice`): each records the events Stripe would, and `deliver` posts an event
to a webhook URL signed as Stripe signs it (`signature_header`), as often and in whatever
order a test wants.

    emu = StripeEmulator()
    with ServedApp(emu.app) as served: ...   # PATCHBAY_STRIPE_API_BASE=served.url
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
from collections.abc import Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from tests.emulators import stripe_billing_objects as billing_objects
from tests.emulators import stripe_objects as objects

API_VERSION = "2026-10-28.endive"
SECRET_KEY = "sk_test_emulator_0123456789"
WEBHOOK_SECRET = "whsec_emulator_0123456789abcdef"
_PERIOD = 30 * 24 * 3600


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    """`Stripe-Signature` as Stripe writes it: `t=TS,v1=HEX(HMAC-SHA256(secret, "TS.payload"))`."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0][c]=v` pairs into nested dicts and lists (numeric keys become list positions)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for part, following in itertools.pairwise([*parts, None]):
            if following is None:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    fixed = {k: _lists(v) for k, v in node.items()}
    if fixed and all(k.isdigit() for k in fixed):
        return [fixed[k] for k in sorted(fixed, key=int)]
    return fixed


class StripeError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


class StripeEmulator:
    """State of one Stripe account in test mode; `clock` gives every object's `created`."""

    def __init__(
        self, *, clock: Callable[[], int] = lambda: 1_780_000_000, prices: dict[str, int] | None = None
    ) -> None:
        self.clock = clock
        self.prices: dict[str, int] = dict(prices or {})
        """Recurring price id -> unit amount in cents; a subscription checkout may use only these."""
        self.customers: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.meter_events: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self._session_params: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.checkout_origin = "https://checkout.stripe.com"
        """Where a session's `url` points; a browser test sets it to the emulator's own origin,
        which serves a trivial payment page at `/c/pay/{id}`."""
        self.app = Starlette(
            routes=[
                Route("/v1/customers", self._create_customer, methods=["POST"]),
                Route("/v1/customers/{id}", self._get("customers"), methods=["GET"]),
                Route("/v1/checkout/sessions", self._create_session, methods=["POST"]),
                Route("/v1/checkout/sessions/{id}", self._get("sessions"), methods=["GET"]),
                Route("/v1/subscriptions/{id}", self._get("subscriptions"), methods=["GET"]),
                Route("/v1/events", self._list_events, methods=["GET"]),
                Route("/v1/billing/meter_events", self._create_meter_event, methods=["POST"]),
                Route("/c/pay/{id}", self._checkout_page, methods=["GET"]),
            ]
        )

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_emu{next(self._ids):06d}"

    # -- the HTTP surface ------------------------------------------------------------------

    async def _params(self, request: Request) -> dict[str, Any]:
        if request.headers.get("authorization") != f"Bearer {SECRET_KEY}":
            raise StripeError(401, "Invalid API Key provided")
        if request.method == "GET":
            params = decode_form(list(request.query_params.multi_items()))
        else:
            form = await request.form()
            params = decode_form([(k, str(v)) for k, v in form.multi_items()])
        self.requests.append((request.method, request.url.path, params))
        return params

    def _answer(self, handler: Callable[[Request, dict[str, Any]], dict[str, Any]]) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                return JSONResponse(handler(request, await self._params(request)))
            except StripeError as exc:
                return JSONResponse(objects.error(exc.message, param=exc.param), status_code=exc.status)

        return endpoint

    def _get(self, store: str) -> Any:
        def find(request: Request, _params: dict[str, Any]) -> dict[str, Any]:
            found: dict[str, Any] | None = getattr(self, store).get(request.path_params["id"])
            if found is None:
                raise StripeError(404, f"No such {store[:-1]}: '{request.path_params['id']}'", param="id")
            return found

        return self._answer(find)

    @property
    def _create_customer(self) -> Any:
        def create(_request: Request, params: dict[str, Any]) -> dict[str, Any]:
            cid = self.new_id("cus")
            self.customers[cid] = objects.customer(
                cid,
                created=self.clock(),
                metadata=params.get("metadata", {}),
                name=params.get("name"),
                email=params.get("email"),
            )
            return self.customers[cid]

        return self._answer(create)

    @property
    def _create_session(self) -> Any:
        return self._answer(lambda _r, params: self.create_session(params))

    def create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        mode = params.get("mode")
        items = params.get("line_items")
        if mode not in ("payment", "subscription"):
            raise StripeError(400, "mode must be payment or subscription here", param="mode")
        if not isinstance(items, list) or not items:
            raise StripeError(
                400, "line_items is required in payment and subscription mode", param="line_items"
            )
        total = 0
        for n, item in enumerate(items):
            quantity = int(item.get("quantity", "1"))
            if mode == "payment":
                data = item.get("price_data") or {}
                if data.get("currency") != "usd" or "unit_amount" not in data or "product_data" not in data:
                    raise StripeError(
                        400, "price_data needs currency, unit_amount and product_data", f"line_items[{n}]"
                    )
                total += int(data["unit_amount"]) * quantity
            elif item.get("price") not in self.prices:
                raise StripeError(
                    400, f"No such price: '{item.get('price')}'", param=f"line_items[{n}][price]"
                )
            else:
                total += self.prices[item["price"]] * quantity
        if params.get("customer") is not None and params["customer"] not in self.customers:
            raise StripeError(400, f"No such customer: '{params['customer']}'", param="customer")
        sid = self.new_id("cs_test")
        session = objects.checkout_session(
            sid,
            created=self.clock(),
            mode=mode,
            url=f"{self.checkout_origin}/c/pay/{sid}",
            customer=params.get("customer"),
            client_reference_id=params.get("client_reference_id"),
            metadata=params.get("metadata", {}),
            amount_total=total,
            success_url=params.get("success_url"),
            cancel_url=params.get("cancel_url"),
        )
        self.sessions[sid] = session
        self._session_params[sid] = params
        return session

    async def _checkout_page(self, request: Request) -> HTMLResponse:
        """Stripe's payment page, reduced to naming the session: a test pays with `complete`."""
        session = self.sessions.get(request.path_params["id"])
        if session is None:
            return HTMLResponse(
                "<!doctype html><title>Not found</title><h1>No such session</h1>", status_code=404
            )
        cents = session["amount_total"]
        return HTMLResponse(
            f"<!doctype html><title>Emulated Stripe Checkout</title><h1>Pay {cents // 100}.{cents % 100:02d} USD</h1>"
            f"<p id='session'>{session['id']}</p>"
        )

    @property
    def _list_events(self) -> Any:
        def listing(_request: Request, params: dict[str, Any]) -> dict[str, Any]:
            newest_first = sorted(self.events, key=lambda e: (e["created"], e["id"]), reverse=True)
            since = int(params.get("created", {}).get("gte", 0))
            found = [
                e for e in newest_first if e["created"] >= since and params.get("type") in (None, e["type"])
            ]
            if "starting_after" in params:
                ids = [e["id"] for e in found]
                found = found[ids.index(params["starting_after"]) + 1 :]
            limit = int(params.get("limit", 10))
            return objects.list_of(found[:limit], url="/v1/events", has_more=len(found) > limit)

        return self._answer(listing)

    @property
    def _create_meter_event(self) -> Any:
        def create(_request: Request, params: dict[str, Any]) -> dict[str, Any]:
            payload = params.get("payload") or {}
            if not params.get("event_name") or "stripe_customer_id" not in payload or "value" not in payload:
                raise StripeError(
                    400, "event_name and payload[stripe_customer_id], payload[value] are required"
                )
            identifier = params.get("identifier") or self.new_id("mev")
            # Stripe drops a repeated identifier (within its dedupe window): the first one stands.
            return self.meter_events.setdefault(
                identifier,
                objects.meter_event(
                    event_name=params["event_name"],
                    identifier=identifier,
                    payload=payload,
                    created=self.clock(),
                    timestamp=int(params.get("timestamp", self.clock())),
                ),
            )

        return self._answer(create)

    # -- what happens in Stripe's pages ------------------------------------------------------

    def emit(self, type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
        event = objects.event(
            self.new_id("evt"),
            type=type,
            created=self.clock(),
            obj=json.loads(json.dumps(obj)),
            previous=previous,
            api_version=API_VERSION,
        )
        self.events.append(event)
        return event

    def complete(self, session_id: str) -> list[dict[str, Any]]:
        """The customer pays: the session completes (and, in subscription mode, a subscription starts)."""
        session, params = self.sessions[session_id], self._session_params[session_id]
        now, emitted = self.clock(), []
        customer = session["customer"] or self.new_id("cus")
        if customer not in self.customers:
            self.customers[customer] = objects.customer(
                customer, created=now, metadata={}, name=None, email=None
            )
        session.update(status="complete", payment_status="paid", customer=customer)
        if session["mode"] == "payment":
            intent = self.new_id("pi")
            charge_id = self.new_id("ch")
            session["payment_intent"] = intent
            # A charge carries the metadata of the PaymentIntent it was made for.
            metadata = params.get("payment_intent_data", {}).get("metadata", {})
            self.charges[charge_id] = billing_objects.charge(
                charge_id,
                created=now,
                amount=session["amount_total"],
                amount_refunded=0,
                customer=customer,
                payment_intent=intent,
                metadata=metadata,
            )
        else:
            sub_id = self.new_id("sub")
            items = [
                billing_objects.subscription_item(
                    self.new_id("si"),
                    sub_id=sub_id,
                    created=now,
                    price_id=item["price"],
                    unit_amount=self.prices[item["price"]],
                    period=(now, now + _PERIOD),
                )
                for item in params["line_items"]
            ]
            metadata = params.get("subscription_data", {}).get("metadata", {})
            self.subscriptions[sub_id] = billing_objects.subscription(
                sub_id, customer=customer, created=now, status="active", items=items, metadata=metadata
            )
            session["subscription"] = sub_id
            emitted.append(self.emit("customer.subscription.created", self.subscriptions[sub_id]))
        emitted.insert(0, self.emit("checkout.session.completed", session))
        return emitted

    def change_plan(self, sub_id: str, price_id: str) -> dict[str, Any]:
        """The customer switches plan (the billing portal): the first item moves to another price."""
        sub, now = self.subscriptions[sub_id], self.clock()
        old = json.loads(json.dumps(sub["items"]))
        sub["items"]["data"][0] = billing_objects.subscription_item(
            self.new_id("si"),
            sub_id=sub_id,
            created=now,
            price_id=price_id,
            unit_amount=self.prices[price_id],
            period=(now, now + _PERIOD),
        )
        return self.emit("customer.subscription.updated", sub, previous={"items": old})

    def set_status(self, sub_id: str, status: str) -> dict[str, Any]:
        sub = self.subscriptions[sub_id]
        previous = {"status": sub["status"]}
        sub["status"] = status
        return self.emit("customer.subscription.updated", sub, previous=previous)

    def cancel(self, sub_id: str) -> dict[str, Any]:
        sub = self.subscriptions[sub_id]
        sub.update(status="canceled", canceled_at=self.clock(), ended_at=self.clock())
        return self.emit("customer.subscription.deleted", sub)

    def refund(self, charge_id: str, amount: int) -> dict[str, Any]:
        charge = self.charges[charge_id]
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return self.emit("charge.refunded", charge, previous=previous)

    def fail_invoice(self, customer: str, amount_due: int, attempt_count: int = 1) -> dict[str, Any]:
        now = self.clock()
        inv = billing_objects.invoice(
            self.new_id("in"),
            created=now,
            customer=customer,
            amount_due=amount_due,
            attempt_count=attempt_count,
            next_attempt=now + 3 * 24 * 3600,
        )
        return self.emit("invoice.payment_failed", inv)

    def charge_for(self, session_id: str) -> str:
        intent = self.sessions[session_id]["payment_intent"]
        return next(cid for cid, c in self.charges.items() if c["payment_intent"] == intent)

    # -- webhook delivery --------------------------------------------------------------------

    @staticmethod
    def payload(event: dict[str, Any]) -> bytes:
        return json.dumps(event, indent=2).encode()

    async def deliver(
        self,
        client: httpx.AsyncClient,
        url: str,
        event: dict[str, Any],
        *,
        secret: str = WEBHOOK_SECRET,
        timestamp: int | None = None,
    ) -> httpx.Response:
        """POST one event as Stripe does: JSON body, `Stripe-Signature` over exactly these bytes.
        `timestamp` defaults to now, since the receiver checks it against its own clock."""
        import time

        body = self.payload(event)
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": signature_header(body, secret, ts),
        }
        return await client.post(url, content=body, headers=headers)
