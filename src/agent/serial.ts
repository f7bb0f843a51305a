/** Work that must not overlap (payloads, revocations, index scans): each task starts when the previous ends. */
export class SerialWork {
  #tail: Promise<unknown> = Promise.resolve();

  /** Run `f` after everything queued before it; its result or error is the caller's alone. */
  run<T>(f: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(f, f);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Resolves when everything queued so far has ended. */
  idle(): Promise<void> {
    return this.#tail.then(() => undefined);
  }
}
