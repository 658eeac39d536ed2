// What `sair policy` and `sair failsafe` must agree on: where the policy server's Leases live and
// how many shards there are.
import { z } from 'zod';
import { fields } from '../common/config.js';

export const leaseSpec = {
  namespace: { env: 'SAIR_POD_NAMESPACE', flag: '--namespace', form: 'a namespace name', help: 'namespace of the Leases (and of the LLM ConfigMap/Secret)', schema: fields.string('sair-system') },
  leaseName: {
    env: 'SAIR_LEASE_NAME',
    flag: '--lease-name',
    form: 'a Lease name',
    help: 'Lease used for leader election; with --shards above 1 the prefix of the shard Leases (<name>-shard-<i>-of-<n>) and member Leases',
    schema: fields.string('sair-policy'),
  },
  shards: {
    env: 'SAIR_SHARDS',
    flag: '--shards',
    form: 'an integer from 1 to 64',
    help: 'split the pipelines among the policy-server replicas, one Lease per shard (1: one leader decides for all)',
    schema: z.coerce.number().int().min(1).max(64).default(1),
  },
  apiServer: {
    env: 'SAIR_KUBE_API_SERVER',
    flag: '--kube-api-server',
    form: 'a plain-HTTP API server URL (kubectl proxy), e.g. http://127.0.0.1:8001',
    help: 'talk to this API server instead of the in-cluster or kubeconfig one',
    schema: z.url().optional(),
  },
  identity: { env: 'SAIR_POD_NAME', flag: '--identity', form: 'a name unique among the replicas', help: 'holder identity in Leases and Events (the pod name)', schema: fields.optionalString() },
};
