// The playground's credentials. The page holds no API key of its own: the first time it sends a
// chat message or opens a voice session for an org and agent, it creates a short-lived key
// bound to that agent through the admin API (`POST /admin/v1/orgs/{org}/api-keys`, with the
// caller's own rights: the `keys` permission), keeps it in memory only, and uses it as any
// client would: as the bearer of `/v1/chat/completions`, and to mint the realtime token a
// voice session opens with (`POST /v1/realtime/client_secrets`). The key lists on the Keys page
// as `playground-…` and stops working by itself after LIFETIME.

import { api, seg } from "./api.js";

const LIFETIME = "30m";
const RENEW_BEFORE_MS = 60_000;

function expiryOf(iso) {
  const zoned = /(Z|[+-]\d\d:?\d\d)$/.test(iso) ? iso : `${iso}Z`;
  return Date.parse(zoned);
}

function suffix() {
  return crypto.getRandomValues(new Uint32Array(2)).reduce((text, n) => text + n.toString(36), "");
}

/** A failure of a `/v1` call, with the API's own message when it sent one. */
export class GatewayError extends Error {
  constructor(status, message, code = null, headers = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/** The error a `/v1` response carries (`{error: {message, code}}`), as a GatewayError. */
export async function gatewayError(response) {
  let error = {};
  try {
    const body = await response.json();
    if (body && typeof body.error === "object" && body.error) error = body.error;
  } catch {
    error = {};
  }
  const message = error.message || `the gateway answered ${response.status} ${response.statusText}`.trim();
  return new GatewayError(response.status, message, error.code || null, response.headers);
}

export class PlaygroundKeys {
  constructor() {
    this.held = new Map();
  }

  /** A live key for `agent` (an agent's name, or "" for the org's own routing) in `org`. */
  async key(org, agent) {
    const id = `${org.id}\n${agent}`;
    const held = this.held.get(id);
    if (held && held.expiresAt - Date.now() > RENEW_BEFORE_MS) return held.key;
    const issued = await api("POST", `/orgs/${seg(org.id)}/api-keys`, {
      name: `playground-${agent || "org"}-${suffix()}`,
      agent: agent || null,
      expires: LIFETIME,
    });
    this.held.set(id, { key: issued.key, expiresAt: expiryOf(issued.expires_at) });
    return issued.key;
  }

  /** A realtime token (`{value, expires_at}`) for one voice session of `agent` in `org`. */
  async realtimeToken(org, agent, model) {
    const key = await this.key(org, agent);
    let response;
    try {
      response = await fetch("/v1/realtime/client_secrets", {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ session: { type: "realtime", model } }),
        credentials: "omit",
        cache: "no-store",
      });
    } catch {
      throw new GatewayError(0, "Cannot reach the Patchbay server. Check that it is running, then try again.");
    }
    if (!response.ok) throw await gatewayError(response);
    const minted = await response.json();
    return { value: minted.value, expires_at: minted.expires_at };
  }
}
