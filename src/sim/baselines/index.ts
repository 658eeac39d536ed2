// The controllers `sair simulate` knows by name. Each factory gets the simulator's ports; only
// the oracle and static-peak read SimKnowledge.
import type { ControllerFactory } from '../run.js';
import { createHpaController } from './hpa.js';
import { createKedaController } from './keda.js';
import { createOracleController } from './oracle.js';
import { createStaticController, createStaticPeakController } from './static.js';
import { createThresholdController } from './threshold.js';
import { createVpaController } from './vpa.js';

export const BASELINES: Record<string, { summary: string; factory: ControllerFactory }> = {
  hpa: { summary: 'Kubernetes HPA v2 per stage: 60 % utilization, 15 s sync, default behavior', factory: (p) => createHpaController(p) },
  keda: { summary: 'KEDA-like: 10 queued items per replica, 30 s polling, through the HPA', factory: (p) => createKedaController(p) },
  threshold: { summary: 'threshold scaler: +1 above 80 %, -1 below 30 % utilization, 60 s cooldown', factory: (p) => createThresholdController(p) },
  vpa: { summary: 'VPA-like vertical scaler of GPU shares toward 60 % utilization', factory: (p) => createVpaController(p) },
  static: { summary: "static: each stage's initial replicas and share", factory: (p) => createStaticController(p) },
  'static-min': { summary: 'static at each stage’s minimum', factory: (p) => createStaticController(p, { replicas: 'min' }) },
  'static-peak': { summary: 'static, sized from the model for the workload’s peak (knows the peak)', factory: (p) => createStaticPeakController(p) },
  oracle: { summary: 'knows the future: cheapest allocation for the coming peak, pre-scaled past cold starts', factory: (p) => createOracleController(p) },
  'oracle-path': {
    summary: 'the oracle with the SLO budgeted along the whole path rather than evenly per stage',
    factory: (p) => createOracleController(p, { sloSplit: 'path' }),
  },
};
