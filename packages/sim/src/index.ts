export { type Fleet, type FleetOptions, SIMULATED_LABEL, siteName, startFleet } from './fleet.js';
