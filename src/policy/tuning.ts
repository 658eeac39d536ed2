// Every behaviour constant of the policy, each with the reason for its value. Values chosen by
// measurement were chosen on seeds 1-5 of the built-in suites (paper and issue, 60 min) and are
// reported on held-out seeds and generated scenarios (docs/policy.md). Settings a user may change
// live in settings.ts; these are the policy's own.

export const TUNING = {
  // Estimate
  /** Seconds an emergency allows for working off a stage's queued backlog: a burst's queue is drained, not merely stopped from growing. */
  backlogDrainS: 20,
  /** Per-window decay of the best capacity seen per unit of GPU share: forgets a faster past over hours, not ticks. */
  capacityDecay: 0.9995,
  /** Tie-breaks between stages at the same load/capacity: queue growth first, then latency share; small enough never to outrank a real difference. */
  tieGrowth: 0.02,
  tieLatency: 0.01,
  /** A stage whose replica costs under this fraction of a GPU-hour counts as cheap (a CPU stage). */
  cheapStageCost: 0.05,
  /** Fraction of the target load a cheap stage runs at until an hour of its loads says less will do (operating-point.ts): a third, so a 3x burst still fits at almost no cost. */
  cheapHeadroom: 1 / 3,
  /** The newest scrape's entry rate must exceed the window's by this ratio to count as a surge (a 3x surge reads 1.5 while it fills half a 30 s window)... */
  surgeRatio: 1.25,
  /** ...and by this many Poisson standard deviations, so noise at low rates is no surge. */
  surgeZ: 4,

  /** Forgetting of the batch service-time model per observation: about 500 windows (2 hours of 15 s ticks). */
  serviceDecay: 0.998,
  /** The service-time model extrapolates to maxBatch only when its standard error is within this fraction. */
  serviceMaxRelativeError: 0.2,
  /** Fewer effective windows than this (three, less forgetting) and the service-time model says nothing. */
  serviceMinWeight: 2.5,
  /** Swings smaller than this (std / mean of the detrended entry rate) are not worth forecasting. */
  forecastMinVariation: 0.1,
  /** How far the autocorrelation must fall between lag 0 and a period, so a slow drift is not one. */
  forecastMinDip: 0.5,
  /** A shorter lag within this fraction of the best autocorrelation wins (multiples of a period correlate too). */
  forecastNearBest: 0.9,
  /** Cap on a forecast factor: a near-idle current rate would make any peak look enormous. */
  forecastMaxFactor: 8,
  /** Forecast factors below this are the noise of the rate's windows, not a coming peak. */
  forecastMinFactor: 1.2,

  // Floors
  /** Load/capacity an emergency sizes for: leaves 30 % for the burst still growing. */
  emergencyTarget: 0.7,
  /** A share raise that brings load/capacity within this of the emergency target needs no replicas too (a cold start for little). */
  emergencyShareSlack: 0.15,
  /** Full-batch load/capacity above which a forecast burst is met ahead of time; below it the stage absorbs it. */
  anticipateAbove: 0.75,
  /** The surge reserve is sized on the median load of this window... */
  reserveWindowMs: 120_000,
  /** ...and asks nothing with fewer samples (a minute at 15 s ticks). */
  reserveMinSamples: 4,

  // Normalize
  /**
   * Highest full-batch load/capacity a GPU stage may be cut to by default. A batching stage nearer
   * its full-batch capacity runs fuller batches that wait longer, and P99 doubles long before the
   * queue grows (at 0.6, image-classification and nlp-bert under Poisson load had twice the P99 for
   * 0.1-0.3 $/h less). The operating point learns per pipeline from here (operating-point.ts).
   */
  gpuCutMaxPressure: 0.4,
  /** Ticks at an unchanged allocation before P99 may vouch for a deeper cut (a minute at 15 s ticks). */
  slackMinSamples: 4,
  /** No cut past this full-batch load/capacity, however loose the SLO: above it batches fill and queues start. */
  gpuCutSlackMaxPressure: 0.75,

  // Propose
  /** Load/capacity above which a stage is hot and a scale-up is a good move. */
  hot: 0.85,
  /** Default load/capacity a stage should run at (the operating point's starting target): headroom for noise and bursts, little idle cost. */
  target: 0.65,
  /** A trim must leave a stage under this load/capacity (scaled like the target) to be a good move. */
  safeAfterDown: 0.72,
  /**
   * Prior of a share cut after which the replicas pack onto no fewer GPUs, where the cluster bills
   * whole GPUs and it frees no room another stage waits for: it saves nothing billed and slows every
   * batch, and its capacity is missing when the next burst comes, so it ranks below hold; the learning
   * may still try it.
   */
  idleCutPrior: -0.2,
  /**
   * Prior of a share rise that the GPUs already billed hold (a pipeline with one GPU stage, where the
   * cluster bills whole GPUs): it costs nothing and is capacity in place for a first burst, which the
   * first scrape shows 15 s late, so it ranks just above hold (0.35) and below a hot stage's scale-up.
   */
  fillPrior: 0.4,
  /** Prior of a consolidation (a replica fewer, the share raised to keep capacity) that frees a whole GPU: as good as a safe trim, since capacity stays. A repack (a replica more where one sits alone on a GPU, then the trim) has the same. */
  packPrior: 0.6,
  /** A repack whose new replica found no room beside the others freed nothing; the same stage is not tried again for this long (half an hour: a cold start per stage and try, at most). */
  repackRetryMs: 1_800_000,
  /** The share a GPU stage usually holds is the one it stayed at or under for this fraction of the last hour's ticks... */
  usualShareQuantile: 0.9,
  /** ...over this memory: an hour, a compressed day, so a rise for a spike's minutes is not usual and a diurnal climb is. */
  usualShareMemoryMs: 3_600_000,
  /** P99/SLO under which the pipeline is calm enough to trim. */
  calmP99Ratio: 0.8,
  /** P99/SLO above which the bottleneck counts as hot even under its load target. */
  hotP99Ratio: 0.9,

  // Learn
  /** Experiences kept per memory cell (state bucket x action): enough to show a trend, few enough for 10,000 cells. */
  samplesPerCell: 6,
  /** Decay of a cell's reward counts per new experience: older outcomes of the same move fade. */
  cellDecay: 0.97,
  /** Dirichlet prior on the three rewards: an unseen action predicts each with p = 1/3. */
  rewardPrior: 1,
  /** Bytes one stored experience is counted as against the buffer's byte bound. */
  bytesPerSample: 320,
  /** Beyond this state distance similarity is below 0.05 and a cell is ignored. */
  maxStateDistance: 1.5,
  /** How long a GPU stage's cut depth is held before its outcome moves it (operating-point.ts): ten 30 s windows. */
  operatingEpisodeMs: 300_000,
  /** A calm episode moves a stage's cut depth this much of the way to the deepest: four such episodes, twenty minutes, to reach it. */
  operatingStep: 0.25,
  /** Episodes whose peak load a replica trim past the default must still meet by share alone: an hour, a compressed day's peak. */
  surgeMemoryEpisodes: 12,
  /** Per calm episode, how far the ceiling a violation set lifts again: a step in five episodes, so a burnt depth is retried after half an hour, not five minutes. */
  operatingCeilingLift: 0.05,

  // Select
  /**
   * Decisions that may wait for an LLM call slot, per slot; past that the bandit decides at once.
   * Four calls' latency of waiting is about the most that still beats the deadline, and a burst
   * (a replica that gains 500 pipelines) then costs seconds, not the whole deadline per tick. Not tuned.
   */
  llmWaitingPerSlot: 4,
} as const;

export type Tuning = typeof TUNING;
