// Values from a run's state or events, as text (React escapes it; nothing here is ever HTML).
import type { Json } from "./api";

const MAX_CHARS = 4000;

/** JSON text of a value, cut to a length the page can lay out quickly. */
export function show(value: Json | undefined, indent = 2, max = MAX_CHARS): string {
  const text =
    value === undefined ? "(absent)" : typeof value === "string" ? value : JSON.stringify(value, null, indent);
  return text.length > max ? `${text.slice(0, max)}… (${text.length - max} more characters)` : text;
}

export function same(a: Json | undefined, b: Json | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
