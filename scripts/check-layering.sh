#!/usr/bin/env bash
# The layering check (docs/design.md, "Layout and dependency direction"):
# prints every violation as `file:line: rule` and exits 1 if there is any.
# scripts/test.sh runs it before ctest.
#
#   scripts/check-layering.sh
#
# 1. Direction. The modules, from the bottom:
#
#      proto, common, raft, statemachine, storage, net, client, server, cli
#
#    A module includes only its own headers and those of modules below it
#    (so storage may use raft, client net, cli server and client; server
#    everything beneath it). `common/` sits above `proto/` because Status
#    carries the wire's lockpb::ErrorCode. Includes are by path from the
#    repository root: a quoted include whose first folder is a module names
#    that module, and `../` is refused. The same holds for the fencelock_*
#    targets a module's CMake files link.
#
# 2. The pure cores. raft/ and statemachine/ include nothing of ours but
#    common/ and proto/ (not each other, not anything above), and none of:
#
#      Asio and Boost    <boost/...>, <asio...>
#      RocksDB           <rocksdb/...>
#      threads           <thread> <mutex> <shared_mutex> <condition_variable>
#                        <atomic> <future> <semaphore> <latch> <barrier>
#                        <stop_token> <pthread.h> <threads.h> <stdatomic.h>
#      clocks            <chrono> <ctime> <time.h> <sys/time.h> <sys/times.h>
#      files, sockets    <fstream> <filesystem> <iostream> <cstdio> <stdio.h>
#      and the OS        <unistd.h> <fcntl.h> <dirent.h> <poll.h> <netdb.h>
#                        <csignal> <signal.h> <sys/...> <netinet/...>
#                        <arpa/...> <linux/...>
#
#    <cstdio> is refused whole, not only its FILE functions: formatting has
#    <charconv> and fmt. spdlog/ is allowed: the core logs through a logger
#    its driver injects. Because spdlog pulls in <chrono> and <mutex>, the
#    code (comments and string literals aside) is also searched for what
#    those headers would allow: steady_clock, system_clock,
#    high_resolution_clock, clock_gettime, gettimeofday, std::time(,
#    std::thread, std::jthread, std::this_thread, std::mutex, std::atomic,
#    std::async, std::random_device, rand(, srand(, getenv, fopen,
#    std::ifstream, std::ofstream, std::fstream, std::filesystem. Their CMake
#    files link no Boost::, RocksDB::, Threads:: or OpenSSL:: target.
#
# 3. The lock statistics (server/lock_stats.*, server/histogram.*) are pure
#    too, though in server/: times are passed in, so the same rules as 2
#    hold except that <chrono> (durations, time points) is allowed; and no
#    Prometheus client (<prometheus/...>): metric names are the exporter's.
#
# tests/ is exempt (a test may reach across layers to set a scene), and so
# are headers outside the repository (generated etcd protos in cli/bench).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

modules="proto common raft statemachine storage net client server cli"

sources=()
cmake_files=()
for module in $modules; do
  [[ -d $module ]] || continue
  while IFS= read -r file; do sources+=("$file"); done < <(
    find "$module" -type f \( -name '*.h' -o -name '*.cc' -o -name '*.hpp' -o -name '*.cpp' \) | sort)
  while IFS= read -r file; do cmake_files+=("$file"); done < <(
    find "$module" -type f \( -name 'CMakeLists.txt' -o -name '*.cmake' \) | sort)
done

report=$(
  {
    if ((${#sources[@]})); then
      awk -v modules="$modules" '
        BEGIN {
          n = split(modules, list, " ")
          for (i = 1; i <= n; i++) rank[list[i]] = i
          pure["raft"] = 1; pure["statemachine"] = 1
          forbidden["threads"] = "^(thread|mutex|shared_mutex|condition_variable|atomic|future|semaphore|latch|barrier|stop_token|pthread\\.h|threads\\.h|stdatomic\\.h)$"
          forbidden["clocks"] = "^(chrono|ctime|time\\.h|sys/time\\.h|sys/times\\.h)$"
          forbidden["Asio/Boost"] = "^(boost/|asio/|asio\\.hpp$|asio$)"
          forbidden["RocksDB"] = "^rocksdb/"
          forbidden["files, sockets or the OS"] = "^(fstream|filesystem|iostream|cstdio|stdio\\.h|unistd\\.h|fcntl\\.h|dirent\\.h|poll\\.h|netdb\\.h|csignal|signal\\.h)$|^(sys|netinet|arpa|linux)/"
          forbidden["Prometheus"] = "^prometheus/"
          tokens["clocks"] = "steady_clock|system_clock|high_resolution_clock|clock_gettime|gettimeofday|std::time[ \t]*\\("
          tokens["threads"] = "std::(thread|jthread|this_thread|mutex|atomic|async)([^A-Za-z0-9_]|$)"
          tokens["unseeded randomness"] = "std::random_device|(^|[^A-Za-z0-9_:.>])s?rand[ \t]*\\("
          tokens["environment variables"] = "getenv"
          tokens["files"] = "fopen|std::(ifstream|ofstream|fstream|filesystem)"
        }
        FNR == 1 {
          split(FILENAME, parts, "/")
          mod = parts[1]
          in_comment = 0
          stats = (FILENAME ~ /^server\/(lock_stats|histogram)\.(h|cc)$/)
        }
        function violation(rule) {
          printf "%s:%d: %s\n", FILENAME, FNR, rule
        }
        # The line without comments and without the contents of string and
        # character literals (block comments may span lines).
        function code_of(line,    out, i, c, prev, state) {
          out = ""; state = in_comment ? "comment" : "code"; prev = ""
          for (i = 1; i <= length(line); i++) {
            c = substr(line, i, 1)
            if (state == "comment") {
              if (c == "*" && substr(line, i + 1, 1) == "/") { state = "code"; i++ }
            } else if (state == "string" || state == "char") {
              if (c == "\\") i++
              else if ((state == "string" && c == "\"") || (state == "char" && c == "\x27")) {
                state = "code"; out = out c
              }
            } else if (c == "/" && substr(line, i + 1, 1) == "/") {
              break
            } else if (c == "/" && substr(line, i + 1, 1) == "*") {
              state = "comment"; i++
            } else if (c == "\"") {
              state = "string"; out = out c
            } else if (c == "\x27" && prev !~ /[0-9A-Fa-f]/) {
              state = "char"; out = out c
            } else {
              out = out c
            }
            prev = c
          }
          in_comment = (state == "comment")
          return out
        }
        {
          was_comment = in_comment
          code = code_of($0)
          if (!was_comment && match($0, /^[ \t]*#[ \t]*include[ \t]*[<"][^>"]+[>"]/)) {
            directive = substr($0, RSTART, RLENGTH)
            quoted = (directive ~ /"/)
            sub(/^[ \t]*#[ \t]*include[ \t]*[<"]/, "", directive)
            sub(/[>"]$/, "", directive)
            inc = directive
            if (quoted && inc ~ /^\.\.\//) {
              violation("relative include \"" inc "\": include by path from the repository root")
            } else if (quoted && split(inc, p, "/") > 1 && (p[1] in rank) && p[1] != mod) {
              target = p[1]
              if ((mod in pure) && target != "common" && target != "proto") {
                violation(mod "/ is a pure core: it includes only common/ and proto/, not " target "/ (\"" inc "\")")
              } else if (rank[target] > rank[mod]) {
                violation(mod "/ includes " target "/, a module above it (\"" inc "\")")
              }
            }
            if (mod in pure) {
              for (kind in forbidden) {
                if (inc ~ forbidden[kind]) violation(mod "/ is a pure core: no " kind " (<" inc ">)")
              }
            }
            if (stats) {
              for (kind in forbidden) {
                if (kind != "clocks" && inc ~ forbidden[kind]) violation("the lock statistics are pure: no " kind " (<" inc ">)")
              }
            }
          }
          if ((mod in pure) || stats) {
            for (kind in tokens) {
              if (match(code, tokens[kind])) {
                found = substr(code, RSTART, RLENGTH)
                gsub(/^[^A-Za-z_]+|[^A-Za-z0-9_]+$/, "", found)
                violation((stats ? "the lock statistics are pure" : mod "/ is a pure core") ": no " kind " (" found ")")
              }
            }
          }
        }
      ' "${sources[@]}"
    fi
    if ((${#cmake_files[@]})); then
      awk -v modules="$modules" '
        BEGIN {
          n = split(modules, list, " ")
          for (i = 1; i <= n; i++) rank["fencelock_" list[i]] = i
          pure["raft"] = 1; pure["statemachine"] = 1
        }
        FNR == 1 { split(FILENAME, parts, "/"); mod = parts[1] }
        {
          line = $0
          sub(/#.*/, "", line)
          count = split(line, words, /[^A-Za-z0-9_:]+/)
          for (i = 1; i <= count; i++) {
            w = words[i]
            if (w in rank && w != "fencelock_" mod) {
              if ((mod in pure) && w != "fencelock_common" && w != "fencelock_proto") {
                printf "%s:%d: %s/ is a pure core: it links only fencelock_common and fencelock_proto, not %s\n", FILENAME, FNR, mod, w
              } else if (rank[w] > rank["fencelock_" mod]) {
                printf "%s:%d: %s/ links %s, a module above it\n", FILENAME, FNR, mod, w
              }
            }
            if ((mod in pure) && w ~ /^(Boost|RocksDB|Threads|OpenSSL)::/) {
              printf "%s:%d: %s/ is a pure core: it links no %s\n", FILENAME, FNR, mod, w
            }
          }
        }
      ' "${cmake_files[@]}"
    fi
  } | sort -t: -k1,1 -k2,2n
)

if [[ -n $report ]]; then
  printf '%s\n' "$report"
  count=$(printf '%s\n' "$report" | wc -l)
  echo "check-layering: $count violation(s) of the layering rules (scripts/check-layering.sh says why)" >&2
  exit 1
fi
echo "check-layering: OK (${#sources[@]} source files, ${#cmake_files[@]} CMake files)"
