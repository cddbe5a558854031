#include "core/progress.h"

#include <cstdio>
#include <unistd.h>

namespace fb {

Progress::Progress(bool quiet) : tty_(isatty(STDERR_FILENO) != 0), quiet_(quiet) {}

void Progress::begin(const std::string& what, long total) {
  what_ = what;
  total_ = total;
  done_ = 0;
  last_pct_ = -1;
  start_ = last_draw_ = std::chrono::steady_clock::now();
  draw(true);
}

void Progress::step(long done) {
  done_ = done;
  draw(false);
}

void Progress::end() {
  done_ = total_;
  draw(true);
  if (tty_ && !quiet_) std::fputc('\n', stderr);
  total_ = 0;
}

void Progress::message(const std::string& line) {
  if (quiet_) return;
  if (tty_) std::fputs("\r\033[K", stderr);
  std::fprintf(stderr, "%s\n", line.c_str());
  if (tty_ && total_ > 0) draw(true);
}

void Progress::draw(bool force) {
  if (quiet_ || total_ <= 0) return;
  auto now = std::chrono::steady_clock::now();
  int pct = static_cast<int>(100.0 * done_ / total_);
  double secs = std::chrono::duration<double>(now - start_).count();
  if (tty_) {
    if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
    constexpr int width = 30;
    int fill = width * pct / 100;
    std::string bar(fill, '#');
    bar.resize(width, '.');
    double eta = done_ > 0 ? secs * (total_ - done_) / done_ : 0;
    std::fprintf(stderr, "\r\033[K%s %s [%s] %ld/%ld %3d%% %.1fs eta %.1fs", job_.c_str(), what_.c_str(),
                 bar.c_str(), done_, total_, pct, secs, eta);
  } else {
    // Plain lines at every 25% so logs stay short but show life.
    if (!force && pct / 25 == last_pct_ / 25) return;
    std::fprintf(stderr, "%s %s %ld/%ld (%d%%, %.1fs)\n", job_.c_str(), what_.c_str(), done_, total_, pct, secs);
  }
  std::fflush(stderr);
  last_pct_ = pct;
  last_draw_ = now;
}

}  // namespace fb
