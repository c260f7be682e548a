// Whether one connection still carries anything (patchbay-voice.js).
//
// A network can drop a path without closing it: a NAT that forgets the connection, a laptop that
// sleeps, a phone moving from Wi-Fi to mobile data. No FIN or reset arrives, so the WebSocket
// looks open until TCP gives up, minutes later, while the caller talks to nobody. So when
// nothing has come from the server for `everyMs`, the client pings it (`patchbay.ping`, which
// the server answers with `patchbay.pong` behind whatever it has queued); when that is not
// answered within `everyMs` either, the connection is lost. A connection still opening counts
// the same way: its ping cannot go out, so it is lost after twice `everyMs`.

export class Heartbeat {
  /**
   * @param {number} everyMs  silence before a ping, and the wait for its answer (0: never)
   * @param {{ping: () => void, lost: (silentMs: number) => void, now?: () => number}} hooks
   */
  constructor(everyMs, { ping, lost, now = () => performance.now() }) {
    this.everyMs = everyMs;
    this.ping = ping;
    this.lost = lost;
    this.now = now;
    this.heardAt = now();
    this.pingedAt = null;
    this.gone = false;
    this.timer = everyMs > 0 ? setInterval(() => this.tick(), Math.max(50, everyMs / 4)) : null;
  }

  /** Something came from the server. */
  heard() {
    this.heardAt = this.now();
    this.pingedAt = null;
  }

  tick() {
    if (this.gone) return;
    const now = this.now();
    if (this.pingedAt === null) {
      if (now - this.heardAt < this.everyMs) return;
      this.pingedAt = now;
      this.ping();
    } else if (now - this.pingedAt >= this.everyMs) {
      this.gone = true;
      this.stop();
      this.lost(now - this.heardAt);
    }
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
