// `npm run bench:scenarios`: the baselines on the first 12 held-out generated scenarios (seeds
// 1000-1011, one run seed, 60 simulated minutes each) through runMatrix, to show that the
// generated set separates controllers. Prints SLO attainment and mean cost rate per controller
// and scenario; the last line is the summary (mean attainment).
import { BASELINES } from '../src/sim/baselines/index.js';
import { generateSuite } from '../src/sim/generator.js';
import { runMatrix } from '../src/sim/matrix.js';

const CONTROLLERS = ['hpa', 'keda', 'static-peak', 'oracle'];
const suite = generateSuite(1000, 12);
const started = performance.now();
const results = await runMatrix({
  scenarios: suite.map((g) => ({ pipeline: g.pipeline, workload: g.workload })),
  controllers: CONTROLLERS,
  seeds: [1],
  factory: (name) => BASELINES[name]!.factory,
  durationMs: 3_600_000,
});

const cell = (s: string, w: number): string => s.padStart(w);
console.log('generated held-out scenarios 1000-1011, 60 min simulated, run seed 1; attainment = fraction of requests within the SLO, $/h = mean cost rate');
console.log(`${'scenario'.padEnd(9)} ${'shape'.padEnd(11)} ${'stages'.padStart(6)} ${'SLO ms'.padStart(7)} ${CONTROLLERS.map((c) => cell(`${c} att`, 15) + cell('$/h', 7)).join(' ')}`);
for (const g of suite) {
  const runs = CONTROLLERS.map((c) => results.find((r) => r.pipeline === g.name && r.controller === c)!);
  const dag = g.pipeline.stages.some((s) => s.upstream.length > 1 || s.downstream.length > 1) ? 'D' : 'C';
  console.log(
    `${g.name.padEnd(9)} ${g.shape.padEnd(11)} ${cell(`${g.pipeline.stages.length}${dag}`, 6)} ${cell(String(g.pipeline.sloP99Ms), 7)} ${runs.map((r) => cell(r.sloAttainment.toFixed(3), 15) + cell(r.cost.meanRatePerHour.toFixed(2), 7)).join(' ')}`,
  );
}
const mean = (c: string, f: (r: (typeof results)[number]) => number): number => {
  const xs = results.filter((r) => r.controller === c).map(f);
  return xs.reduce((a, b) => a + b, 0) / xs.length;
};
console.log(`${'mean'.padEnd(9)} ${''.padEnd(11)} ${''.padStart(6)} ${''.padStart(7)} ${CONTROLLERS.map((c) => cell(mean(c, (r) => r.sloAttainment).toFixed(3), 15) + cell(mean(c, (r) => r.cost.meanRatePerHour).toFixed(2), 7)).join(' ')}`);
console.log(`stages: C chain, D DAG; ${results.length} runs in ${((performance.now() - started) / 1000).toFixed(1)} s wall`);
console.log(`summary: scenarios=${suite.length} ${CONTROLLERS.map((c) => `${c.replace('-', '_')}_attainment=${mean(c, (r) => r.sloAttainment).toFixed(3)}`).join(' ')}`);
