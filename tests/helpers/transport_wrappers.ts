/** A base for test transports that sit in front of a real one and change or watch only `send`. */
import type { Transport } from "../../src/tpm/transport/transport.ts";

/** Delegates `uri`, `resourceManaged` and `close` to `inner`; subclasses write `send`. */
export abstract class WrappedTransport implements Transport {
  constructor(protected readonly inner: Transport) {}
  get uri(): string {
    return this.inner.uri;
  }
  get resourceManaged(): boolean {
    return this.inner.resourceManaged;
  }
  abstract send(command: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void> {
    return this.inner.close();
  }
}
