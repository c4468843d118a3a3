/**
 * ANSI colours for text output, or none: callers decide (a terminal, and neither --no-color
 * nor NO_COLOR); renderers only receive the palette.
 */
export interface Palette {
  enabled: boolean;
  green(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
  bold(s: string): string;
  dim(s: string): string;
}

const wrap = (open: number, close: number) => (s: string) => `\u001b[${open}m${s}\u001b[${close}m`;
const same = (s: string) => s;

export function palette(enabled: boolean): Palette {
  if (!enabled) return { enabled, green: same, red: same, yellow: same, cyan: same, bold: same, dim: same };
  return { enabled, green: wrap(32, 39), red: wrap(31, 39), yellow: wrap(33, 39), cyan: wrap(36, 39), bold: wrap(1, 22), dim: wrap(2, 22) };
}

/** Whether to colour a stream: a terminal, and neither `--no-color` nor NO_COLOR (https://no-color.org). */
export function colorWanted(stream: { isTTY?: boolean }, flag: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  return flag && !env.NO_COLOR && Boolean(stream.isTTY);
}
