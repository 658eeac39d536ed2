// A realistic AdmissionReview as kube-apiserver sends it for a 3-container GPU inference pod
// (preprocess, model server, postprocess) in an opted-in namespace. `sair webhook --dev` prints
// a curl command that posts it; the benchmark and the tests use it too.

export function samplePod(): Record<string, unknown> {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      generateName: 'bert-infer-7d9f8c6b5d-',
      namespace: 'ml',
      labels: { app: 'bert-infer', 'pod-template-hash': '7d9f8c6b5d', 'app.kubernetes.io/part-of': 'nlp-pipeline' },
      annotations: { 'sair.dev/gpu-cores': '30', 'sair.dev/gpu-memory': '8Gi', 'prometheus.io/scrape': 'true' },
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'bert-infer-7d9f8c6b5d', uid: '3c1f0c1e-6a3c-4d59-9a64-0d7e2f6c1b11', controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      volumes: [
        { name: 'models', persistentVolumeClaim: { claimName: 'models' } },
        { name: 'kube-api-access-x2vns', projected: { defaultMode: 420, sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }] } },
      ],
      containers: [
        {
          name: 'preprocess',
          image: 'registry.example.com/nlp/tokenizer:1.4.2',
          ports: [{ containerPort: 9000, protocol: 'TCP' }],
          env: [{ name: 'MAX_SEQ_LEN', value: '256' }],
          resources: { limits: { cpu: '2', memory: '2Gi' }, requests: { cpu: '1', memory: '1Gi' } },
          volumeMounts: [{ name: 'kube-api-access-x2vns', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
        {
          name: 'model-server',
          image: 'registry.example.com/nlp/bert-triton:24.08',
          args: ['--model-repository=/models', '--http-port=8000'],
          ports: [{ containerPort: 8000, protocol: 'TCP' }],
          env: [
            { name: 'CUDA_VISIBLE_DEVICES', value: '0' },
            { name: 'LD_PRELOAD', value: '/opt/tritonserver/lib/libtcmalloc.so' },
          ],
          resources: { limits: { cpu: '4', memory: '16Gi', 'nvidia.com/gpu': '1' }, requests: { cpu: '2', memory: '8Gi', 'nvidia.com/gpu': '1' } },
          volumeMounts: [
            { name: 'models', readOnly: true, mountPath: '/models' },
            { name: 'kube-api-access-x2vns', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
          ],
          readinessProbe: { httpGet: { path: '/v2/health/ready', port: 8000, scheme: 'HTTP' }, periodSeconds: 5, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 },
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
        {
          name: 'postprocess',
          image: 'registry.example.com/nlp/postprocess:1.4.2',
          resources: { limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '500m', memory: '512Mi' } },
          volumeMounts: [{ name: 'kube-api-access-x2vns', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
      ],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      serviceAccount: 'default',
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {},
  };
}

/** An AdmissionReview v1 for `object`, with the request fields kube-apiserver fills for a pod CREATE. */
export function sampleReview(object: Record<string, unknown> = samplePod(), uid = '705ab4f5-6393-11e8-b7cc-42010a800002'): Record<string, unknown> {
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      name: '',
      namespace: 'ml',
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        uid: 'a2b7c1d0-2f4e-4c55-8f5f-0c3a3e2d9b10',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}
