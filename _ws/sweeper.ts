// Copyright 2026 the connctx authors. MIT license.

/**
 * One process-wide timer for the deadlines of every WebSocket (write
 * progress, the closing handshake, idle pings): {@linkcode sweeper} ticks
 * each registered connection at a quarter of the shortest timeout any of
 * them needs (10 ms to 1 s), and stops when none is left. The timer is
 * unref'd, so open sockets alone do not keep the process alive.
 *
 * @module
 */

/** What the sweeper ticks (a connection's engine, engine.ts). */
export interface Swept {
  /** Checks the connection's deadlines at `now` (ms since the epoch). */
  tick(now: number): void;
  /** Shortest timeout the connection needs checked, in ms (0: none). */
  readonly resolution: number;
}

/**
 * The shared timer.
 *
 * @example
 * ```ts
 * import { sweeper } from "./sweeper.ts";
 *
 * const conn = { resolution: 1000, tick(now: number) {} };
 * sweeper.add(conn);
 * sweeper.delete(conn);
 * ```
 */
export const sweeper = new class Sweeper {
  #items = new Set<Swept>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #interval = 1000;

  /** Ticks `s` from now on. */
  add(s: Swept): void {
    this.#items.add(s);
    const res = s.resolution;
    if (res > 0) {
      const want = Math.min(1000, Math.max(10, Math.floor(res / 4)));
      if (want < this.#interval || this.#timer === undefined) {
        this.#interval = Math.min(this.#interval, want);
        this.#restart();
      }
    }
  }

  /** Stops ticking `s`; the timer stops with the last one. */
  delete(s: Swept): void {
    this.#items.delete(s);
    if (this.#items.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      this.#interval = 1000;
    }
  }

  #restart(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    const timer = setInterval(() => {
      const now = Date.now();
      for (const s of this.#items) s.tick(now);
    }, this.#interval);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }
}();
