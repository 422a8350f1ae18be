// Imported first by the console's entry: its body runs before the rest of the console's modules
// (React, the pages, the map data) are evaluated, so the first page's reads are already on their way.
import { startEarlyReads } from './early-reads';

startEarlyReads();
