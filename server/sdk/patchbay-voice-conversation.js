// The conversation as the browser client knows it, kept so a reconnection can carry it over.
//
// A reconnection opens a new session, and a new session starts with an empty conversation. So
// the client keeps the user and assistant messages it saw (from the server's own events, in the
// server's order, under the server's item ids) and, once the new session is ready, sends them
// back as `conversation.item.create`: the agent goes on with what was said before.
//
// What the caller heard counts, not what was generated: after a barge-in the server truncates the
// assistant's item to the words that were played (`conversation.item.truncate`), so on
// `conversation.item.truncated` the client asks for the item again (`conversation.item.retrieve`)
// and keeps the server's truncated text. Function calls and system messages are not replayed:
// the app's tools and `session.instructions` are sent again with every connection.

// The most recent messages replayed; the server keeps at most 200 items a session.
export const REPLAY_ITEMS = 100;

const ROLES = new Set(["user", "assistant"]);

function textOf(item) {
  return (item.content || []).map((part) => part.text ?? part.transcript ?? "").join("");
}

export class Conversation {
  constructor(limit = REPLAY_ITEMS) {
    this.limit = limit;
    this.items = new Map(); // item id -> { role, text, exact }, in the server's order
  }

  get size() {
    return this.items.size;
  }

  /**
   * Follows one server event. Returns a client event to send, if the conversation needs one
   * (the truncated item's text, asked for again).
   */
  follow(event) {
    switch (event.type) {
      case "conversation.item.created":
      case "conversation.item.added":
      case "conversation.item.done":
      case "response.output_item.added":
      case "response.output_item.done":
        this.track(event.item || {}, false);
        break;
      case "conversation.item.retrieved":
        this.track(event.item || {}, true);
        break;
      case "conversation.item.input_audio_transcription.completed":
        this.setText(event.item_id, event.transcript, false);
        break;
      case "response.output_audio_transcript.done":
        this.setText(event.item_id, event.transcript, false);
        break;
      case "response.output_text.done":
        this.setText(event.item_id, event.text, false);
        break;
      case "conversation.item.truncated":
        if (this.items.has(event.item_id)) return { type: "conversation.item.retrieve", item_id: event.item_id };
        break;
      case "conversation.item.deleted":
        this.items.delete(event.item_id);
        break;
    }
    return null;
  }

  track(item, exact) {
    if (item.type !== "message" || !ROLES.has(item.role) || !item.id) return;
    const known = this.items.get(item.id);
    if (!known) {
      this.items.set(item.id, { role: item.role, text: textOf(item), exact });
      while (this.items.size > this.limit) this.items.delete(this.items.keys().next().value);
      return;
    }
    this.setText(item.id, textOf(item), exact);
  }

  /** A later event's text replaces the item's, unless the server's truncated text is already in. */
  setText(itemId, text, exact) {
    const known = this.items.get(itemId);
    if (!known || typeof text !== "string" || (known.exact && !exact)) return;
    if (text || exact) known.text = text;
    known.exact = known.exact || exact;
  }

  /** The messages to send a new session, oldest first, under their old ids. */
  replay() {
    const events = [];
    for (const [id, { role, text }] of this.items) {
      if (!text) continue; // nothing was said: an untranscribed turn, a reply cut before its first word
      const type = role === "user" ? "input_text" : "output_text";
      events.push({ type: "conversation.item.create", item: { id, type: "message", role, content: [{ type, text }] } });
    }
    return events;
  }
}
