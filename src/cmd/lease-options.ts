// What `sair policy` and `sair failsafe` must agree on: where the policy server's Lease lives.
import { z } from 'zod';
import { fields } from '../common/config.js';

export const leaseSpec = {
  namespace: { env: 'SAIR_POD_NAMESPACE', flag: '--namespace', form: 'a namespace name', help: 'namespace of the Leases (and of the LLM ConfigMap/Secret)', schema: fields.string('sair-system') },
  leaseName: { env: 'SAIR_LEASE_NAME', flag: '--lease-name', form: 'a Lease name', help: 'Lease used for leader election', schema: fields.string('sair-policy') },
  apiServer: {
    env: 'SAIR_KUBE_API_SERVER',
    flag: '--kube-api-server',
    form: 'a plain-HTTP API server URL (kubectl proxy), e.g. http://127.0.0.1:8001',
    help: 'talk to this API server instead of the in-cluster or kubeconfig one',
    schema: z.url().optional(),
  },
  identity: { env: 'SAIR_POD_NAME', flag: '--identity', form: 'a name unique among the replicas', help: 'holder identity in Leases and Events (the pod name)', schema: fields.optionalString() },
};
