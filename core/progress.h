// Progress on stderr: a redrawn bar on a terminal, plain lines otherwise (logs, CI).
#pragma once

#include <chrono>
#include <string>

namespace fb {

class Progress {
 public:
  explicit Progress(bool quiet = false);
  // Starts a task of `total` steps (e.g. PPL windows); nests under the current job.
  void begin(const std::string& what, long total);
  void step(long done);
  void end();
  void message(const std::string& line);  // a whole line, never torn by the bar
  void set_job(const std::string& label) { job_ = label; }
  bool is_tty() const { return tty_; }

 private:
  void draw(bool force);
  bool tty_ = false, quiet_ = false;
  std::string job_, what_;
  long total_ = 0, done_ = 0;
  int last_pct_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace fb
