/**
 * The changes between two versions of one config entry, in words, for `plan --base`
 * (docs/architecture.md §1, the module contract's `describeChange`). Every field is compared,
 * so that a field added to the config shows in a review without a change here: a domain gives
 * only the order, the labels and the special words of the fields it knows.
 */

/** One change, in words: `keep daily 14 → 7`. */
export interface FieldChange {
  text: string;
  /** The change itself opens the way to destruction (allowPruneLast, allowDown turned on). */
  destructive?: boolean;
}

export interface FieldWords {
  /** As shown; by default the field's path with spaces for dots (`keep daily`). */
  label?: string;
  /** Compared as one value (JSON), not field by field. */
  whole?: boolean;
  /** Words of its own for a change of the field (`retention shortened 2y → 1y`); null says nothing changed. */
  words?: (before: unknown, after: unknown) => FieldChange | null;
  /** Not compared: names, positions in the YAML. */
  ignore?: boolean;
}

/**
 * By dotted path (`age.olderThan`): the fields a domain knows, listed in the order they are
 * described. Fields not listed follow, in the order they appear, with the default words.
 */
export type FieldVocabulary = Record<string, FieldWords>;

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The values of an entry by dotted path, down to the fields that are compared as one value. */
function leaves(value: unknown, path: string, vocabulary: FieldVocabulary, out: Map<string, unknown>): Map<string, unknown> {
  if (value === undefined) return out;
  const words = vocabulary[path];
  if (path && (words?.whole || words?.words || words?.ignore || !isPlainObject(value))) {
    out.set(path, value);
    return out;
  }
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) leaves(v, path ? `${path}.${key}` : key, vocabulary, out);
  return out;
}

const show = (v: unknown): string => (v === undefined || v === null ? 'unset' : typeof v === 'string' ? v : JSON.stringify(v));

/** `label before → after`, as every field without words of its own is described. */
export function changeText(label: string, before: unknown, after: unknown): string {
  return `${label} ${show(before)} → ${show(after)}`;
}

/** The changes of every field between two versions of an entry, known fields first. */
export function fieldChanges(before: object, after: object, vocabulary: FieldVocabulary): FieldChange[] {
  const a = leaves(before, '', vocabulary, new Map());
  const b = leaves(after, '', vocabulary, new Map());
  const paths = [...new Set([...Object.keys(vocabulary), ...a.keys(), ...b.keys()])];
  const out: FieldChange[] = [];
  for (const path of paths) {
    const words = vocabulary[path] ?? {};
    const x = a.get(path);
    const y = b.get(path);
    if (words.ignore || JSON.stringify(x) === JSON.stringify(y)) continue;
    if (words.words) {
      const change = words.words(x, y);
      if (change) out.push(change);
    } else out.push({ text: changeText(words.label ?? path.replaceAll('.', ' '), x, y) });
  }
  return out;
}
