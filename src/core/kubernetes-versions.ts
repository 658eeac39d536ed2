// The Kubernetes versions SAIR supports: the minors upstream maintained on this release's date
// (2026-12-07). Upstream patches the three newest minors for about 14 months each: 1.35 until
// 2027-02-28, 1.36 until 2027-06-28, 1.37 until 2027-10-28; 1.34 reached end of life on 2026-10-27,
// and 1.38's cycle (begun 2026-08-31) had not released. The manifests use only fields that every
// supported minor serves by default (test/manifests/kubernetes-versions.test.ts); `sair check`
// compares the cluster with this range.

export const KUBERNETES_MAJOR = 1;
export const OLDEST_SUPPORTED_MINOR = 35;
export const NEWEST_SUPPORTED_MINOR = 37;

/** `1.35 to 1.37`, for docs and messages. */
export const SUPPORTED_KUBERNETES = `${KUBERNETES_MAJOR}.${OLDEST_SUPPORTED_MINOR} to ${KUBERNETES_MAJOR}.${NEWEST_SUPPORTED_MINOR}`;
