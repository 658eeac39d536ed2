// How `sair check` prints its results: one line per check (like `linkerd check`), the fix under
// each that is not ok, and a summary.
import type { CheckResult } from './checks.js';

const MARK = { ok: '√', warn: '‼', fail: '×' } as const;

export function renderReport(results: CheckResult[], header: string): string {
  const width = Math.max(...results.map((r) => r.id.length));
  const lines = results.flatMap((r) => [`${MARK[r.status]} ${r.id.padEnd(width)}  ${r.message}`, ...(r.fix ? [`  ${''.padEnd(width)}  fix: ${r.fix}`] : [])]);
  const n = (s: CheckResult['status']) => results.filter((r) => r.status === s).length;
  return `${header}\n\n${lines.join('\n')}\n\nStatus: ${n('fail')} failed, ${n('warn')} warning(s), ${n('ok')} passed\n`;
}
