// The few fields of Pod and HorizontalPodAutoscaler JSON that the webhook reads or writes.
// Everything else passes through untouched, so each shape keeps an index signature.

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPathExpr?: string;
  [key: string]: unknown;
}

export interface Container {
  name: string;
  env?: EnvVar[];
  envFrom?: { prefix?: string; [key: string]: unknown }[];
  volumeMounts?: VolumeMount[];
  resources?: { limits?: Record<string, string | number>; requests?: Record<string, string | number>; [key: string]: unknown };
  [key: string]: unknown;
}

export interface Volume {
  name: string;
  [key: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec: {
    containers: Container[];
    initContainers?: Container[];
    volumes?: Volume[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface ScalingRules {
  selectPolicy?: string;
  [key: string]: unknown;
}

export interface HpaBehavior {
  scaleUp?: ScalingRules;
  scaleDown?: ScalingRules;
  [key: string]: unknown;
}

export interface HorizontalPodAutoscaler {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec: { behavior?: HpaBehavior | null; [key: string]: unknown };
  [key: string]: unknown;
}
