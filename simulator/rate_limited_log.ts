/**
 * Warnings that clients can cause at will (malformed frames, refused connections) go through here:
 * the first few of a kind are logged as they come, the rest of the interval becomes one summary
 * line, so a client sending garbage in a loop cannot flood the log.
 */

/** Messages of one kind logged one by one per interval. */
export const LOG_BURST = 5;
/** The interval, after which a summary says how many more there were. */
export const LOG_INTERVAL_MS = 60_000;

interface Kind {
  since: number;
  shown: number;
  suppressed: number;
  timer: ReturnType<typeof setTimeout>;
}

export class RateLimitedLog {
  readonly #kinds = new Map<string, Kind>();

  constructor(
    private readonly sink: (message: string) => void,
    private readonly burst = LOG_BURST,
    private readonly intervalMs = LOG_INTERVAL_MS,
  ) {}

  /** Log `message` unless `kind` already had its burst this interval. */
  warn(kind: string, message: string): void {
    let k = this.#kinds.get(kind);
    if (!k) {
      const timer = setTimeout(() => this.#summarize(kind), this.intervalMs);
      // A pending summary must not keep the process alive.
      (timer as { unref?: () => void }).unref?.();
      k = { since: performance.now(), shown: 0, suppressed: 0, timer };
      this.#kinds.set(kind, k);
    }
    if (k.shown < this.burst) {
      k.shown++;
      this.sink(message);
    } else {
      k.suppressed++;
    }
  }

  /** Log the pending summaries now (the server is stopping). */
  flush(): void {
    for (const kind of [...this.#kinds.keys()]) this.#summarize(kind);
  }

  #summarize(kind: string): void {
    const k = this.#kinds.get(kind);
    if (!k) return;
    clearTimeout(k.timer);
    this.#kinds.delete(kind);
    if (k.suppressed > 0) {
      const seconds = Math.max(1, Math.round((performance.now() - k.since) / 1000));
      this.sink(`${kind}: ${k.suppressed} more in the last ${seconds} s, not logged one by one`);
    }
  }
}
