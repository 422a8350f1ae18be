export { SIM_LIBVIRT_NODE_XML, SimAppliance, simLibvirt } from './appliance.js';
export { type Fleet, type FleetOptions, SIM_APPLIANCE_LABEL, SIMULATED_LABEL, siteName, startFleet } from './fleet.js';
