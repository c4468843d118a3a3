/**
 * The health check `consistency`: the links of the config (`links:`) compared on the live
 * services (src/links/live.ts: every key when both sides are small, else a sample), as samples:
 * the orphans of each link on each side with up to five examples, the keys compared and how,
 * and the links that name something that does not exist. A link whose service is down is
 * UNKNOWN alone; the others are still compared.
 */
import type { Desired } from '../../config/types.js';
import { isFailure, type LinkOutcome } from '../../links/compare.js';
import type { Sample } from '../samples.js';

/** Pure: the samples of the outcomes. */
export function consistencySamples(outcomes: readonly LinkOutcome[]): Sample[] {
  const samples: Sample[] = [];
  const broken: string[] = [];
  for (const o of outcomes) {
    if (isFailure(o)) {
      if (o.kind === 'broken') broken.push(o.problem);
      for (const side of ['postgres', o.other]) samples.push({ check: 'consistency.orphans', labels: { link: o.link, side }, value: null, problem: o.problem });
      continue;
    }
    const example = (examples: string[], count: number) => (count ? `e.g. ${examples.join(', ')}${count > examples.length ? ', …' : ''}` : undefined);
    const rowsDetail = example(o.missing.examples, o.missing.count);
    const sideDetail = example(o.orphans.examples, o.orphans.count);
    samples.push({ check: 'consistency.orphans', labels: { link: o.link, side: 'postgres' }, value: o.missing.count, ...(rowsDetail ? { detail: `rows without their ${o.other === 'chroma' ? 'record' : 'key'}, ${rowsDetail}` } : {}) });
    samples.push({ check: 'consistency.orphans', labels: { link: o.link, side: o.other }, value: o.orphans.count, ...(sideDetail ? { detail: `${o.other === 'chroma' ? 'records' : 'keys'} without their row, ${sideDetail}` } : {}) });
    samples.push({ check: 'consistency.keys_compared', labels: { link: o.link }, value: o.rows + o.records, detail: o.note });
  }
  samples.push({ check: 'consistency.broken_links', value: broken.length, ...(broken.length ? { detail: broken.join('; ') } : {}) });
  return samples;
}

export async function probeConsistency(desired: Desired, now: Date): Promise<Sample[]> {
  const { checkLinksLive } = await import('../../links/live.js');
  return consistencySamples(await checkLinksLive(desired, { now }));
}
