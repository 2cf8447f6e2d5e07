/**
 * Text PostgreSQL can store as it was sent. `text` and `jsonb` refuse U+0000 (SQLSTATE 22021 /
 * 22P05, which surfaced as a 500), and a lone UTF-16 surrogate — JSON allows "\ud800" — has no
 * UTF-8 form: the driver would store U+FFFD in its place, and jsonb refuses the escape outright.
 */
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, 'g');

export const isStorableText = (s: string): boolean => !UNSTORABLE.test(s);

/** The same text with each unstorable code unit spelled \uXXXX (for error details and logs). */
export const storableText = (s: string): string =>
  s.replace(UNSTORABLE_ALL, (unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`);

/**
 * Where the first unstorable string or object key sits in a parsed JSON value, as the zod-style
 * path (`settings.resolution`, `[]` for the value itself), or undefined when all of it is storable.
 * Iterative, with parent links instead of copied paths: a 64 KiB body can nest 30 000 levels deep.
 */
export function findUnstorableText(value: unknown): (string | number)[] | undefined {
  interface Node {
    value: unknown;
    key?: string | number;
    parent?: Node;
  }
  const pathOf = (node: Node | undefined, last?: string): (string | number)[] => {
    const path: (string | number)[] = last === undefined ? [] : [last];
    for (let n = node; n?.key !== undefined; n = n.parent) path.unshift(n.key);
    return path;
  };
  const stack: Node[] = [{ value }];
  while (stack.length > 0) {
    const node = stack.pop()!;
    const v = node.value;
    if (typeof v === 'string') {
      if (!isStorableText(v)) return pathOf(node);
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], key: i, parent: node });
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v);
      for (const [k] of entries) if (!isStorableText(k)) return pathOf(node, storableText(k));
      for (let i = entries.length - 1; i >= 0; i--) stack.push({ value: entries[i]![1], key: entries[i]![0], parent: node });
    }
  }
  return undefined;
}
