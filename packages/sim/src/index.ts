export { SIM_LIBVIRT_URI, SimAppliance } from './appliance.js';
export { type Fleet, type FleetOptions, SIMULATED_LABEL, siteName, startFleet } from './fleet.js';
