import type { z } from 'zod';
import { DomainXmlView, VmList } from './virt.js';

type Json = Record<string, unknown>;

/** OpenAPI paths of virtualized clusters' VMs (see docs/virtualized-edge.md). */
export function addVirtPaths(paths: Json, schemas: Json, schema: (s: z.ZodType, io?: 'input' | 'output') => Json, errorResponse: Json): void {
  schemas.VmList = schema(VmList);
  schemas.DomainXml = schema(DomainXmlView);
  const json = (name: string) => ({ 'application/json': { schema: { $ref: `#/components/schemas/${name}` } } });
  const name = { name: 'name', in: 'path', required: true, schema: { type: 'string' } };
  paths['/api/v1/clusters/{name}/vms'] = {
    get: {
      operationId: 'listClusterVms',
      tags: ['Cluster'],
      description: 'The VMs of a virtualized cluster: requested size and placement, libvirt domain state, and node state. InvalidState for a native cluster.',
      parameters: [name],
      responses: { 200: { description: 'OK', content: json('VmList') }, default: errorResponse },
    },
  };
  paths['/api/v1/clusters/{name}/vms/{vm}/domain.xml'] = {
    get: {
      operationId: 'getVmDomainXml',
      tags: ['Cluster'],
      description:
        "The VM's libvirt domain XML as the appliance reports it (virsh dumpxml --inactive). application/xml by default; JSON (DomainXml) when Accept asks for application/json only.",
      parameters: [name, { name: 'vm', in: 'path', required: true, schema: { type: 'string' } }],
      responses: {
        200: { description: 'OK', content: { 'application/xml': { schema: { type: 'string' } }, ...json('DomainXml') } },
        default: errorResponse,
      },
    },
  };
}
