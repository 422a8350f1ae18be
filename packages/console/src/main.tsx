// The console's entry. The first import starts the reads the first page waits for while the modules
// after it are still being evaluated; boot.tsx renders the app. One bundle, not a lazily loaded app
// chunk: the server would send that chunk only after answering those reads.
import './lib/early-reads-start';
import './boot';
