// Keeps our re-typed kubelet protos wire-compatible: each message SAIR sends or reads is encoded
// with the same serializers gRPC uses and compared with bytes written out by hand from the
// protobuf rules (tag = field_number << 3 | wire_type; 0 varint, 2 length-delimited), then
// decoded back. A wrong field number, type or name in a .proto changes the bytes and fails here.
import type * as grpc from '@grpc/grpc-js';
import { PLUGIN_OPTIONS } from '../../src/device-plugin/plugin.js';
import {
  loadApi,
  loadPodResourcesApi,
  type AllocateRequest,
  type AllocateResponse,
  type AllocatableResourcesResponse,
  type GetPodResourcesRequest,
  type GetPodResourcesResponse,
  type ListAndWatchResponse,
  type ListPodResourcesResponse,
  type PreStartContainerRequest,
  type PreferredAllocationRequest,
  type PreferredAllocationResponse,
  type RegisterRequest,
} from '../../src/device-plugin/proto.js';

interface Codec {
  encode(message: object): Buffer;
  decode(bytes: Buffer): object;
}

function requestOf(service: grpc.ServiceDefinition, rpc: string): Codec {
  const method = service[rpc]!;
  return { encode: (m) => method.requestSerialize(m), decode: (b) => method.requestDeserialize(b) as object };
}

function responseOf(service: grpc.ServiceDefinition, rpc: string): Codec {
  const method = service[rpc]!;
  return { encode: (m) => method.responseSerialize(m), decode: (b) => method.responseDeserialize(b) as object };
}

/** Hex of a string's UTF-8 bytes, so payloads stay readable; tags and lengths are literal hex. */
const utf8 = (text: string): string => Buffer.from(text, 'utf8').toString('hex');
/** Joins hex parts, ignoring spaces. */
const wire = (...parts: string[]): string => parts.join('').replace(/ /g, '');

interface Case {
  name: string;
  codec: Codec;
  message: object;
  hex: string;
}

const registration = loadApi().Registration.service;
const plugin = loadApi().DevicePlugin.service;
const podResources = loadPodResourcesApi().PodResourcesLister.service;

const devicePluginCases: Case[] = [
  {
    name: 'RegisterRequest with DevicePluginOptions',
    codec: requestOf(registration, 'Register'),
    message: {
      version: 'v1beta1',
      endpoint: 'sair-gpu.sock',
      resource_name: 'sair.dev/gpu',
      options: { pre_start_required: true, get_preferred_allocation_available: true },
    } satisfies RegisterRequest,
    hex: wire(
      '0a 07', utf8('v1beta1'),
      '12 0d', utf8('sair-gpu.sock'),
      '1a 0c', utf8('sair.dev/gpu'),
      '22 04', '08 01', '10 01',
    ),
  },
  {
    name: "DevicePluginOptions (SAIR's own)",
    codec: responseOf(plugin, 'GetDevicePluginOptions'),
    message: PLUGIN_OPTIONS,
    // protobufjs writes a field it is given even at its default (false); Go leaves it out.
    hex: wire('08 00', '10 01'),
  },
  {
    name: 'ListAndWatchResponse with Device, TopologyInfo and NUMANode',
    codec: responseOf(plugin, 'ListAndWatch'),
    message: {
      devices: [
        { ID: 'GPU-a::0', health: 'Healthy', topology: { nodes: [{ ID: 1 }] } },
        { ID: 'GPU-a::1', health: 'Unhealthy', topology: { nodes: [{ ID: 0 }] } },
      ],
    } satisfies ListAndWatchResponse,
    hex: wire(
      '0a 19', // Device, 25 bytes
      '0a 08', utf8('GPU-a::0'),
      '12 07', utf8('Healthy'),
      '1a 04', '0a 02', '08 01', // topology { nodes { ID: 1 } }
      '0a 1b', // Device, 27 bytes
      '0a 08', utf8('GPU-a::1'),
      '12 09', utf8('Unhealthy'),
      '1a 04', '0a 02', '08 00', // NUMA node 0, written although it is the default
    ),
  },
  {
    name: 'PreferredAllocationRequest',
    codec: requestOf(plugin, 'GetPreferredAllocation'),
    message: {
      container_requests: [{ available_deviceIDs: ['g::0', 'g::1', 'h::0'], must_include_deviceIDs: ['h::0'], allocation_size: 2 }],
    } satisfies PreferredAllocationRequest,
    hex: wire(
      '0a 1a', // ContainerPreferredAllocationRequest, 26 bytes
      '0a 04', utf8('g::0'),
      '0a 04', utf8('g::1'),
      '0a 04', utf8('h::0'),
      '12 04', utf8('h::0'),
      '18 02',
    ),
  },
  {
    name: 'PreferredAllocationResponse',
    codec: responseOf(plugin, 'GetPreferredAllocation'),
    message: { container_responses: [{ deviceIDs: ['h::0', 'h::1'] }] } satisfies PreferredAllocationResponse,
    hex: wire('0a 0c', '0a 04', utf8('h::0'), '0a 04', utf8('h::1')),
  },
  {
    name: 'AllocateRequest with ContainerAllocateRequests',
    codec: requestOf(plugin, 'Allocate'),
    message: { container_requests: [{ devices_ids: ['g::0'] }, { devices_ids: ['g::1', 'g::2'] }] } satisfies AllocateRequest,
    hex: wire('0a 06', '0a 04', utf8('g::0'), '0a 0c', '0a 04', utf8('g::1'), '0a 04', utf8('g::2')),
  },
  {
    name: 'AllocateResponse with envs, mounts, devices, annotations and cdi_devices',
    codec: responseOf(plugin, 'Allocate'),
    message: {
      container_responses: [
        {
          envs: { SAIR_GPU_UUID: 'GPU-a' },
          mounts: [{ container_path: '/sair', host_path: '/var/lib/sair', read_only: true }],
          devices: [{ container_path: '/dev/nvidia0', host_path: '/dev/nvidia0', permissions: 'rw' }],
          annotations: { a: 'b' },
          cdi_devices: [{ name: 'nvidia.com/gpu=0' }],
        },
      ],
    } satisfies AllocateResponse,
    hex: wire(
      '0a 70', // ContainerAllocateResponse, 112 bytes
      '0a 16', '0a 0d', utf8('SAIR_GPU_UUID'), '12 05', utf8('GPU-a'), // envs entry: key 1, value 2
      '12 18', '0a 05', utf8('/sair'), '12 0d', utf8('/var/lib/sair'), '18 01', // Mount
      '1a 20', '0a 0c', utf8('/dev/nvidia0'), '12 0c', utf8('/dev/nvidia0'), '1a 02', utf8('rw'), // DeviceSpec
      '22 06', '0a 01', utf8('a'), '12 01', utf8('b'), // annotations entry
      '2a 12', '0a 10', utf8('nvidia.com/gpu=0'), // CDIDevice
    ),
  },
  {
    name: 'PreStartContainerRequest',
    codec: requestOf(plugin, 'PreStartContainer'),
    message: { devices_ids: ['g::0'] } satisfies PreStartContainerRequest,
    hex: wire('0a 04', utf8('g::0')),
  },
];

const podResourcesCases: Case[] = [
  {
    name: 'ListPodResourcesResponse with every PodResources field',
    codec: responseOf(podResources, 'List'),
    message: {
      pod_resources: [
        {
          name: 'web',
          namespace: 'ml',
          containers: [
            {
              name: 'c',
              devices: [{ resource_name: 'sair.dev/gpu', device_ids: ['g::0', 'g::1'], topology: { nodes: [{ ID: 1 }] } }],
              cpu_ids: [2, 3],
              memory: [{ memory_type: 'memory', size: 1024, topology: { nodes: [{ ID: 1 }] } }],
              dynamic_resources: [
                {
                  claim_name: 'gpu',
                  claim_namespace: 'ml',
                  claim_resources: [
                    { cdi_devices: [{ name: 'v.io/g=0' }], driver_name: 'd', pool_name: 'p', device_name: 'g0', share_id: 's' },
                  ],
                },
              ],
            },
          ],
          cpu_ids: [4],
          memory: [{ memory_type: 'hugepages-2Mi', size: 2097152 }],
        },
      ],
    } satisfies ListPodResourcesResponse,
    hex: wire(
      '0a 86 01', // PodResources, 134 bytes (length as a two-byte varint)
      '0a 03', utf8('web'),
      '12 02', utf8('ml'),
      '1a 62', // ContainerResources, 98 bytes
      '0a 01', utf8('c'),
      '12 20', // ContainerDevices, 32 bytes
      '0a 0c', utf8('sair.dev/gpu'),
      '12 04', utf8('g::0'),
      '12 04', utf8('g::1'),
      '1a 04', '0a 02', '08 01',
      '1a 02', '02 03', // cpu_ids, packed
      '22 11', '0a 06', utf8('memory'), '10 80 08', '1a 04', '0a 02', '08 01', // ContainerMemory, size 1024
      '2a 24', // DynamicResource, 36 bytes; field 1 is retired
      '12 03', utf8('gpu'),
      '1a 02', utf8('ml'),
      '22 19', // ClaimResource, 25 bytes
      '0a 0a', '0a 08', utf8('v.io/g=0'), // CDIDevice
      '12 01', utf8('d'),
      '1a 01', utf8('p'),
      '22 02', utf8('g0'),
      '2a 01', utf8('s'),
      '22 01', '04', // pod-level cpu_ids, packed
      '2a 14', '0a 0d', utf8('hugepages-2Mi'), '10 80 80 80 01', // pod-level ContainerMemory, size 2^21
    ),
  },
  {
    name: 'GetPodResourcesRequest',
    codec: requestOf(podResources, 'Get'),
    message: { pod_name: 'web', pod_namespace: 'ml' } satisfies GetPodResourcesRequest,
    hex: wire('0a 03', utf8('web'), '12 02', utf8('ml')),
  },
  {
    name: 'GetPodResourcesResponse',
    codec: responseOf(podResources, 'Get'),
    message: {
      pod_resources: {
        name: 'web',
        namespace: 'ml',
        containers: [
          { name: 'c', devices: [{ resource_name: 'sair.dev/gpu', device_ids: ['g::0'] }], cpu_ids: [], memory: [], dynamic_resources: [] },
        ],
        cpu_ids: [],
        memory: [],
      },
    } satisfies GetPodResourcesResponse,
    // Empty repeated fields are not written.
    hex: wire(
      '0a 24', // PodResources, 36 bytes
      '0a 03', utf8('web'),
      '12 02', utf8('ml'),
      '1a 19', '0a 01', utf8('c'), '12 14', '0a 0c', utf8('sair.dev/gpu'), '12 04', utf8('g::0'),
    ),
  },
  {
    name: 'AllocatableResourcesResponse',
    codec: responseOf(podResources, 'GetAllocatableResources'),
    message: {
      devices: [{ resource_name: 'sair.dev/gpu', device_ids: ['g::0'] }],
      cpu_ids: [0, 1],
      memory: [{ memory_type: 'memory', size: 1024 }],
    } satisfies AllocatableResourcesResponse,
    hex: wire(
      '0a 14', '0a 0c', utf8('sair.dev/gpu'), '12 04', utf8('g::0'),
      '12 02', '00 01',
      '1a 0b', '0a 06', utf8('memory'), '10 80 08',
    ),
  },
];

describe.each([
  ['device plugin v1beta1', devicePluginCases],
  ['PodResources v1', podResourcesCases],
])('%s wire format', (_api, cases) => {
  it.each(cases.map((c) => [c.name, c] as const))('%s encodes to the published bytes and back', (_name, c) => {
    expect(c.codec.encode(c.message).toString('hex')).toBe(c.hex);
    expect(c.codec.decode(Buffer.from(c.hex, 'hex'))).toMatchObject(c.message);
  });
});

describe('messages from a Go peer', () => {
  // Go's encoder leaves out fields at their default value; they must read back as that default.
  it('reads an omitted bool as false and an empty NUMANode as node 0', () => {
    expect(responseOf(plugin, 'GetDevicePluginOptions').decode(Buffer.from('1001', 'hex'))).toEqual({
      pre_start_required: false,
      get_preferred_allocation_available: true,
    });
    const devices = wire('0a 0e', '0a 08', utf8('GPU-a::0'), '1a 02', '0a 00');
    expect(responseOf(plugin, 'ListAndWatch').decode(Buffer.from(devices, 'hex'))).toEqual({
      devices: [{ ID: 'GPU-a::0', health: '', topology: { nodes: [{ ID: 0 }] } }],
    });
  });
});

describe('PodResources v1 service', () => {
  it('has the published rpc paths', () => {
    expect(Object.values(podResources).map((m) => m.path)).toEqual([
      '/v1.PodResourcesLister/List',
      '/v1.PodResourcesLister/GetAllocatableResources',
      '/v1.PodResourcesLister/Get',
    ]);
  });
});

describe('device plugin v1beta1 services', () => {
  it('have the published rpc paths', () => {
    expect(Object.values(registration).map((m) => m.path)).toEqual(['/v1beta1.Registration/Register']);
    expect(Object.values(plugin).map((m) => [m.path, m.responseStream])).toEqual([
      ['/v1beta1.DevicePlugin/GetDevicePluginOptions', false],
      ['/v1beta1.DevicePlugin/ListAndWatch', true],
      ['/v1beta1.DevicePlugin/GetPreferredAllocation', false],
      ['/v1beta1.DevicePlugin/Allocate', false],
      ['/v1beta1.DevicePlugin/PreStartContainer', false],
    ]);
  });
});
