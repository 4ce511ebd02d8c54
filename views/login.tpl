% rebase('layout.tpl', title=title)
<h2>Sign In</h2>
% if error:
<div class="error"><strong>Error:</strong> {{error}}</div>
% end
<form action="/login" method="post">
  <dl>
    <dt><label for="username">Username:</label>
    <dd><input type="text" id="username" name="username" size="30" value="{{username}}" autocomplete="username" required>
    <dt><label for="password">Password:</label>
    <dd><input type="password" id="password" name="password" size="30" autocomplete="current-password" required>
  </dl>
  <div class="actions"><input type="submit" value="Sign In"></div>
</form>
