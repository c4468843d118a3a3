/** The pending plan on the daemon's status page: what `apply` would do now, with its reasons. Data only. */
import type { StatusSection } from '../render/status-page.js';
import { symbolOf } from '../render/progress.js';
import type { Plan } from './types.js';

export function planSection(plan: Plan): StatusSection {
  const rows = [
    ...plan.errors.map((e) => ({ cells: ['!', 'error', e.module, e.message], status: 'CRITICAL' as const })),
    ...plan.actions.map((a) => ({
      cells: [symbolOf(a), `${a.type}${a.risk === 'destructive' ? ' (destructive)' : ''}`, a.target, a.reason],
    })),
  ];
  return {
    id: 'plan', title: 'Pending plan',
    note: `as planned at ${plan.createdAt}: ${plan.actions.length ? `${plan.actions.length} action${plan.actions.length === 1 ? '' : 's'} the next apply would run` : 'nothing to do'}${plan.findings.length ? `; ${plan.findings.length} finding${plan.findings.length === 1 ? '' : 's'} (see Services)` : ''}`,
    tables: [{ columns: ['', 'action', 'target', 'why'], rows, empty: 'no changes: the services match the config' }],
  };
}
