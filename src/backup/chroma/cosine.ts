/**
 * Why cosine collections need care: Chroma's HNSW index (chroma-core/hnswlib) stores a cosine
 * vector normalised, u = v · (1 / (|v| + 1e-30)), with its length |v|, and `get` returns u · |v|.
 * In float32 that differs from v in the last bit of about a quarter of the components, on every
 * insert. Re-inserting the embeddings a backup holds would therefore change them again.
 *
 * `cosinePreimage(t)` finds a vector v that this arithmetic turns into exactly t (see there).
 * The arithmetic is that of the x86-64 build of the server: the sum of squares vectorised over
 * 4 lanes, reduced (l0 + l2) + (l1 + l3), then the tail; no fused multiply-add. It was matched
 * bit for bit against `chroma run` 1.0.5 on 196,500 components (384, 7 and 2 dimensions). A
 * server that computes otherwise is caught by the restore's read-back, which compares every
 * embedding with the backup (`ulpDistance`).
 */

const f32 = Math.fround;

/** |v| as the server computes it. */
export function cosineLength(v: Float32Array): number {
  const n = v.length;
  const vectorised = n - (n % 4);
  let l0 = 0, l1 = 0, l2 = 0, l3 = 0;
  for (let i = 0; i < vectorised; i += 4) {
    l0 = f32(l0 + f32(v[i]! * v[i]!));
    l1 = f32(l1 + f32(v[i + 1]! * v[i + 1]!));
    l2 = f32(l2 + f32(v[i + 2]! * v[i + 2]!));
    l3 = f32(l3 + f32(v[i + 3]! * v[i + 3]!));
  }
  let sum = f32(f32(l0 + l2) + f32(l1 + l3));
  for (let i = vectorised; i < n; i++) sum = f32(sum + f32(v[i]! * v[i]!));
  return f32(Math.sqrt(sum));
}

function inverseOf(length: number): number {
  return f32(1 / f32(length + f32(1e-30)));
}

/** What the server's `get` returns after inserting `v` into a cosine collection. */
export function cosineStored(v: Float32Array): Float32Array {
  const length = cosineLength(v);
  const inverse = inverseOf(length);
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = f32(f32(v[i]! * inverse) * length);
  return out;
}

const scratch = new Float32Array(2);
const bits = new Int32Array(scratch.buffer);

/** Float32 bit patterns in an order where adjacent floats differ by one (-0 and +0 both 0). */
function ordinal(x: number): number {
  scratch[0] = x;
  const b = bits[0]!;
  return b < 0 ? -(b & 0x7fffffff) : b;
}

function fromOrdinal(o: number): number {
  bits[1] = o < 0 ? (-o | 0x80000000) : o;
  return scratch[1]!;
}

/** How many float32 steps apart two values are. */
export function ulpDistance(a: number, b: number): number {
  return Math.abs(ordinal(a) - ordinal(b));
}

function sameFloat(a: number, b: number): boolean {
  return a === b && Object.is(a, -0) === Object.is(b, -0);
}

function storesAs(candidate: number, inverse: number, length: number, t: number): boolean {
  return sameFloat(f32(f32(candidate * inverse) * length), t);
}

/** The candidate nearest `guess` (within 4 steps) that the server turns into `t`, or NaN. */
function nearestValid(t: number, guess: number, inverse: number, length: number): number {
  if (storesAs(guess, inverse, length, t)) return guess;
  const g = ordinal(guess);
  for (let k = 1; k <= 4; k++) {
    const below = fromOrdinal(g - k);
    if (storesAs(below, inverse, length, t)) return below;
    const above = fromOrdinal(g + k);
    if (storesAs(above, inverse, length, t)) return above;
  }
  return NaN;
}

/**
 * A vector whose stored form is exactly `target`, or null when none is found. The stored form
 * depends on the vector's length, a single float. For lengths L near |target|, every component
 * has a small range of values that come out right; the vector must also have length exactly L.
 * Most of the time the nearest valid component values already give length L. Otherwise,
 * moving components one step within their range (largest first) changes the length
 * monotonically (a float sum of squares is monotone in each term), so a binary search over how
 * many components move finds a vector of length L when one is within reach.
 */
export function cosinePreimage(target: Float32Array): Float32Array | null {
  const n = target.length;
  const stored = cosineStored(target);
  let fixed = true;
  for (let i = 0; i < n && fixed; i++) fixed = sameFloat(stored[i]!, target[i]!);
  if (fixed) return target;
  const start = ordinal(cosineLength(target));
  const v = new Float32Array(n);
  const nearest = new Float32Array(n);
  let order: number[] | null = null;
  for (let k = 0; k <= 8; k++) {
    for (const o of k === 0 ? [start] : [start - k, start + k]) {
      const length = fromOrdinal(o);
      if (!(length > 0)) continue;
      const inverse = inverseOf(length);
      const scale = f32(inverse * length);
      let solved = true;
      for (let i = 0; i < n && solved; i++) {
        nearest[i] = nearestValid(target[i]!, f32(target[i]! / scale), inverse, length);
        solved = !Number.isNaN(nearest[i]);
      }
      if (!solved) continue;
      const natural = cosineLength(nearest);
      if (natural === length) return Float32Array.from(nearest);
      // too long: move components one step towards zero, largest first; too short: away from it
      const inward = natural > length;
      order ??= Array.from({ length: n }, (_, i) => i).sort((a, b) => Math.abs(target[b]!) - Math.abs(target[a]!));
      const stepped = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const x = nearest[i]!;
        const outward = x < 0 || Object.is(x, -0) ? -1 : 1;
        const next = fromOrdinal(ordinal(x) + (inward ? -outward : outward));
        stepped[i] = storesAs(next, inverse, length, target[i]!) ? next : x;
      }
      const lengthWith = (moved: number): number => {
        for (let j = 0; j < n; j++) {
          const i = order![j]!;
          v[i] = j < moved ? stepped[i]! : nearest[i]!;
        }
        return cosineLength(v);
      };
      // inward: lengths fall as more move; find the first count at or below L
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        const l = lengthWith(mid);
        if (inward ? l > length : l < length) lo = mid + 1;
        else hi = mid;
      }
      if (lengthWith(lo) === length) return Float32Array.from(v);
    }
  }
  return null;
}
