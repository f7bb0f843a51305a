/** A FIFO lock for async work that must not interleave (several TPM commands that belong together). */
export class Mutex {
  #tail: Promise<void> = Promise.resolve();
  #held = 0;

  /** Is work running or waiting? */
  get busy(): boolean {
    return this.#held > 0;
  }

  /** Run `fn` once every earlier holder has finished; the lock is released however `fn` ends. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    this.#held++;
    const result = this.#tail.then(fn);
    this.#tail = result.then(
      () => void this.#held--,
      () => void this.#held--,
    );
    return result;
  }
}
