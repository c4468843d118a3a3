/**
 * The machine jarvis-db runs on: load per CPU, CPU use during the check, available memory
 * (/proc/meminfo's MemAvailable, which counts reclaimable cache), and free disk space of the
 * file system that holds the storage path.
 */
import { readFile, statfs } from 'node:fs/promises';
import { availableParallelism, cpus, freemem, loadavg, totalmem } from 'node:os';
import { dirname } from 'node:path';
import { messageOf } from '../../errors.js';
import { formatBytes } from '../../render/format.js';
import type { Sample } from '../samples.js';

export interface CpuTimes { busy: number; total: number }

export function cpuTimes(): CpuTimes {
  let busy = 0;
  let total = 0;
  for (const c of cpus()) {
    const t = c.times;
    const all = t.user + t.nice + t.sys + t.idle + t.irq;
    total += all;
    busy += all - t.idle;
  }
  return { busy, total };
}

/** Pure: `/proc/meminfo` → available / total, or null when it lacks the fields. */
export function memoryFromMeminfo(text: string): { available: number; total: number } | null {
  const kb = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const total = kb('MemTotal');
  const available = kb('MemAvailable');
  return total && available !== undefined ? { available, total } : null;
}

/** The nearest existing directory at or above `path` (storage may not exist yet). */
async function statfsNearest(path: string): Promise<Awaited<ReturnType<typeof statfs>>> {
  let p = path;
  for (;;) {
    try {
      return await statfs(p);
    } catch (e) {
      const parent = dirname(p);
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || parent === p) throw e;
      p = parent;
    }
  }
}

/**
 * `cpuBefore` is taken when the check starts, so CPU use covers the check's own duration
 * (the caller makes that at least a short window).
 */
export async function probeSystem(options: { storagePath: string; cpuBefore: CpuTimes }): Promise<Sample[]> {
  const cpuCount = availableParallelism();
  const samples: Sample[] = [{ check: 'system.load_per_cpu', value: loadavg()[0]! / cpuCount, detail: `load ${loadavg()[0]!.toFixed(2)} on ${cpuCount} CPUs` }];
  const after = cpuTimes();
  const total = after.total - options.cpuBefore.total;
  if (total > 0) samples.push({ check: 'system.cpu_usage_ratio', value: (after.busy - options.cpuBefore.busy) / total });
  const meminfo = await readFile('/proc/meminfo', 'utf8').then(memoryFromMeminfo, () => null);
  const memory = meminfo ?? { available: freemem(), total: totalmem() };
  samples.push({ check: 'system.memory_available_ratio', value: memory.available / memory.total, detail: `${formatBytes(memory.available)} of ${formatBytes(memory.total)}` });
  try {
    const fs = await statfsNearest(options.storagePath);
    const free = Number(fs.bavail) * Number(fs.bsize);
    const size = Number(fs.blocks) * Number(fs.bsize);
    samples.push({ check: 'system.disk_free_bytes', value: free });
    samples.push({ check: 'system.disk_free_ratio', value: size > 0 ? free / size : 0, detail: `of the file system holding ${options.storagePath}` });
  } catch (e) {
    const problem = `cannot stat the file system of ${options.storagePath}: ${messageOf(e)}`;
    samples.push({ check: 'system.disk_free_ratio', value: null, problem });
  }
  return samples;
}
