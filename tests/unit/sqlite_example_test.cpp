// The sqlite_changes example extension (dispatch/examples): its writer
// thread's committed changes reach the callback of the interpreter that
// registered it, through the `pyinterp` module's C API and the default loop.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "support.h"

using pyinterp::scoped_enter;
using pyinterp::view;
using namespace std::chrono_literals;

namespace {

// Imports the example in `v` and starts writes into table `table` of a
// fresh database in `dir`.
void start_writes(const view& v, const std::string& dir, const std::string& table) {
    scoped_enter in(v);
    ASSERT_TRUE(in);
    ASSERT_TRUE(test::exec("import sys, threading\n"
                           "sys.path.insert(0, '" PYINTERP_PYTHON_MODULE_DIR "')\n"
                           "import sqlite_changes\n"
                           "changes = []\n"
                           "def on_change(op, table, rowid):\n"
                           "    changes.append((op, table, rowid, probe(), threading.get_ident() != writer_ident))\n"
                           "writer_ident = threading.get_ident()\n"
                           "db = sqlite_changes.connect('" + dir + "/" + table + ".db')\n"
                           "db.on_change(on_change)\n"
                           "T = '" + table + "'\n"
                           "db.execute(f'CREATE TABLE {T}(x)')\n"
                           "for i in range(3):\n"
                           "    db.execute(f'INSERT INTO {T} VALUES ({i})')\n"
                           "db.execute(f'BEGIN; INSERT INTO {T} VALUES (99); ROLLBACK')\n"
                           "db.execute(f'BEGIN; UPDATE {T} SET x = 7 WHERE rowid = 2; DELETE FROM {T} WHERE rowid = 1; COMMIT')\n"));
}

}  // namespace

TEST(SqliteExample, ChangesArriveInTheRegisteringInterpreterFromTheWriterThread) {
    char tmpl[] = "/tmp/pyinterp_sqlite_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl;
    std::vector<view> views = {test::make_interp("sq_a"), test::make_interp("sq_b")};
    start_writes(views[0], dir, "ta");
    start_writes(views[1], dir, "tb");
    const char* tables[] = {"ta", "tb"};
    for (size_t k = 0; k < views.size(); ++k) {
        view& v = views[k];
        ASSERT_TRUE(test::wait_in(v, "len(changes) >= 5")) << v.name();
        std::this_thread::sleep_for(20ms);  // nothing more may arrive
        scoped_enter in(v);
        ASSERT_TRUE(test::exec("db.flush()\ndb.close()\n"));
        std::string id = std::to_string(v.id()), t = tables[k];
        // Each on its own interpreter, none of the other's, the rolled-back
        // insert never, in commit order, off the registering thread.
        EXPECT_EQ(test::eval_str("changes"),
                  "[('INSERT', '" + t + "', 1, " + id + ", True), ('INSERT', '" + t + "', 2, " + id + ", True), "
                  "('INSERT', '" + t + "', 3, " + id + ", True), ('UPDATE', '" + t + "', 2, " + id + ", True), "
                  "('DELETE', '" + t + "', 1, " + id + ", True)]");
        EXPECT_EQ(test::eval_long("db.dropped"), 0);
    }
    // Ending an interpreter with a connection still open: the writer is
    // joined by the connection's dealloc during teardown.
    {
        scoped_enter in(views[0]);
        ASSERT_TRUE(test::exec("db2 = sqlite_changes.connect(db_path := '" + dir + "/late.db')\n"
                               "db2.on_change(on_change)\n"
                               "db2.execute('CREATE TABLE late(x); INSERT INTO late VALUES (1)')\n"));
    }
    EXPECT_EQ(views[0].end(), PYINTERP_OK);
    std::system(("rm -rf " + dir).c_str());
}
