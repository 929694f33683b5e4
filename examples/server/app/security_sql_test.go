package app

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sqlArg is, for each method that takes SQL, the index of its SQL argument.
var sqlArg = map[string]int{
	"Exec": 1, "Query": 1, "QueryRow": 1, "ExecAll": 1, "Gather": 2, "Prepare": 2, "Queue": 0,
	"ReadRow": 2, "Read": 2,
}

// Every SQL statement of the example programs is a constant: values travel
// as parameters, never inside the text. A statement built at run time (a
// concatenation, a Sprintf, a variable) fails this test, whatever its
// inputs are; the injection corpus then shows that the parameters carry
// anything verbatim.
func TestSQLIsConstant(t *testing.T) {
	var files []string
	for _, dir := range []string{".", "..", "../../bare", "../../loadgen", "../../../internal/loadgen"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, f := range m {
			if !strings.HasSuffix(f, "_test.go") {
				files = append(files, f)
			}
		}
	}
	fset := token.NewFileSet()
	parsed := map[string][]*ast.File{} // by directory: a package
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(t, err)
		parsed[filepath.Dir(f)] = append(parsed[filepath.Dir(f)], af)
	}
	checked := 0
	for _, pkg := range parsed {
		c := constChecker{consts: map[string]bool{}, constLists: map[string]bool{}}
		c.collect(pkg)
		for _, af := range pkg {
			ast.Inspect(af, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				name := calleeName(call.Fun)
				i, ok := sqlArg[name]
				if !ok || i >= len(call.Args) {
					return true
				}
				checked++
				if arg := call.Args[i]; !c.constant(arg) {
					var b strings.Builder
					printer.Fprint(&b, fset, arg)
					assert.Failf(t, "SQL built at run time", "%s: the SQL of %s is built at run time: %s", fset.Position(arg.Pos()), name, b.String())
				}
				return true
			})
		}
	}
	assert.GreaterOrEqual(t, checked, 7, "found %d SQL calls: want at least the server's 7 (this test looks in the wrong place)", checked)
	if !t.Failed() {
		t.Logf("%d SQL calls in %d files, each with constant SQL", checked, len(files))
	}
}

// calleeName is the name of the function or method called: Exec for
// tx.Exec, Gather for router.Gather[T].
func calleeName(fun ast.Expr) string {
	switch f := fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	case *ast.IndexExpr:
		return calleeName(f.X)
	case *ast.IndexListExpr:
		return calleeName(f.X)
	}
	return ""
}

// constChecker knows a package's constants and its variables that are
// lists of constant strings (such as schema).
type constChecker struct {
	consts     map[string]bool
	constLists map[string]bool
}

func (c *constChecker) collect(files []*ast.File) {
	for _, af := range files {
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, s := range gd.Specs {
				vs, ok := s.(*ast.ValueSpec)
				if !ok {
					continue
				}
				for i, n := range vs.Names {
					switch {
					case gd.Tok == token.CONST:
						c.consts[n.Name] = true
					case i < len(vs.Values):
						if cl, ok := vs.Values[i].(*ast.CompositeLit); ok && c.allConstant(cl.Elts) {
							c.constLists[n.Name] = true
						}
					}
				}
			}
		}
	}
}

func (c *constChecker) allConstant(es []ast.Expr) bool {
	for _, e := range es {
		if !c.constant(e) {
			return false
		}
	}
	return true
}

// constant reports whether e is a string fixed at compile time: a literal,
// a constant, a sum of them, or the element of a constant list that a
// range loop is walking.
func (c *constChecker) constant(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return e.Kind == token.STRING
	case *ast.ParenExpr:
		return c.constant(e.X)
	case *ast.BinaryExpr:
		return e.Op == token.ADD && c.constant(e.X) && c.constant(e.Y)
	case *ast.Ident:
		if e.Obj == nil { // declared in another file of the package
			return c.consts[e.Name]
		}
		switch d := e.Obj.Decl.(type) {
		case *ast.ValueSpec:
			return e.Obj.Kind == ast.Con
		case *ast.AssignStmt: // for _, stmt := range schema
			if len(d.Rhs) == 1 {
				if u, ok := d.Rhs[0].(*ast.UnaryExpr); ok && u.Op == token.RANGE {
					if list, ok := u.X.(*ast.Ident); ok && c.constLists[list.Name] && d.Lhs[len(d.Lhs)-1].(*ast.Ident).Name == e.Name {
						return true
					}
				}
			}
		}
	}
	return false
}
