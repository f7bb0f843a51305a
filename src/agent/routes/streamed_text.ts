/**
 * A route answer with one text field streamed from bytes instead of held in memory: the IMA list can be
 * hundreds of MB. The envelope is written as usual around a placeholder, and the field's bytes are decoded
 * (UTF-8, across chunk boundaries) and JSON-escaped chunk by chunk into its place, so the body is the same
 * text JSON.stringify would give for the whole string.
 */
import { Buffer } from "node:buffer";

/** Results whose one field set to STREAM_PLACEHOLDER takes the text of `chunks`, read as the answer is sent. */
export class WithStreamedText<R> {
  constructor(readonly results: R, readonly chunks: () => AsyncIterable<Uint8Array>) {}
}

/** No other field holds a NUL character, so its JSON form cannot occur elsewhere in the envelope. */
export const STREAM_PLACEHOLDER = "\u0000streamed\u0000";
const PLACEHOLDER_JSON = JSON.stringify(STREAM_PLACEHOLDER);

/** The body: `text` (an envelope holding STREAM_PLACEHOLDER once) with the placeholder replaced by the chunks. */
export function streamIntoText(text: string, chunks: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const at = text.indexOf(PLACEHOLDER_JSON);
  if (at < 0 || text.indexOf(PLACEHOLDER_JSON, at + 1) >= 0) throw new Error("streamIntoText: one placeholder");
  const head = Buffer.from(`${text.slice(0, at)}"`);
  const tail = Buffer.from(`"${text.slice(at + PLACEHOLDER_JSON.length)}`);
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true }); // keep a BOM, as Buffer.toString does
  const escape = (s: string) => Buffer.from(JSON.stringify(s).slice(1, -1));
  let it: AsyncIterator<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>({
    // pull: the next chunk is read only when the previous one was taken, so memory stays at about one chunk.
    async pull(controller) {
      if (!it) {
        it = chunks[Symbol.asyncIterator]();
        controller.enqueue(head);
        return;
      }
      // Enqueue something on every pull (a chunk can end inside a UTF-8 sequence and decode to nothing).
      for (;;) {
        const next = await it.next();
        if (next.done) {
          const rest = decoder.decode();
          if (rest) controller.enqueue(escape(rest));
          controller.enqueue(tail);
          controller.close();
          return;
        }
        const s = decoder.decode(next.value, { stream: true });
        if (s) return controller.enqueue(escape(s));
      }
    },
    async cancel() {
      await it?.return?.();
    },
  });
}
